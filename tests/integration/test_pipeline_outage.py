"""Engine + simulator: a platform down for a while, and throttles that do or do not say how
long they last, judged by what the simulated platforms received."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from herald.config import Settings
from herald.domain import Platform
from herald.simulator import FaultConfig, LatencyModel, RequestRecord, Simulator, SimulatorConfig
from herald.states import DeliveryState
from herald.testing import eventually
from tests.integration.pipeline import Pipeline, open_pipeline

S = DeliveryState
LI = Platform.LINKEDIN

#: Quotas a few posts fill, on both sides.
TIGHT = {
    "linkedin": {"member_posts_per_day": 3},
    "youtube": {"insert_calls_per_day": 3},
    "instagram": {"publishes_per_24h": 3},
}


def simulator(**sections: dict[str, object]) -> Simulator:
    config = SimulatorConfig.from_settings(
        Settings(**sections),  # type: ignore[arg-type]
        latency=LatencyModel(median_s=0.001, p99_s=0.005),
        seed=5,
    )
    return Simulator(config)


async def until_published(pipe: Pipeline, count: int, within_s: float = 60.0) -> None:
    async def done() -> bool:
        states = [d.state for d in (await pipe.deliveries()).values()]
        return states.count(S.PUBLISHED) == count

    await eventually(done, within_s=within_s, every_s=0.1)


async def test_a_platform_down_for_seconds_costs_no_retry_and_no_quota(tmp_path):
    async with simulator(**TIGHT) as sim:
        engine_settings = {
            "max_retries": 1,  # a refused connection that spent retries would fail deliveries
            "outage_errors": 3,
            "outage_pause_base_s": 0.2,
            "outage_pause_cap_s": 1.0,
        }
        pipe = await open_pipeline(sim, tmp_path, engine=engine_settings, **TIGHT)
        try:
            channels = [await pipe.channel(p) for p in Platform]
            channels.append(await pipe.channel(Platform.FACEBOOK))
            for channel in channels:
                await pipe.schedule([channel], 3)  # the quota of each tight limit, no more
            for platform in Platform:
                await sim.take_down(platform, for_s=3.0)
            engine, task, context = await pipe.start()
            await until_published(pipe, len(channels) * 3)
            engine.request_stop()
            await task
            await context.__aexit__(None, None, None)
            deliveries = await pipe.deliveries()
        finally:
            await pipe.store.close()
    # Every platform refused connections for 3 s; Herald saw it, never counted them, and
    # paused each platform rather than try again every few milliseconds (500 or so).
    metric = engine.metrics.registry.get_sample_value
    for platform in Platform:
        labels = {"platform": platform.value}
        assert 3 <= (metric("herald_requests_not_sent_total", labels) or 0) < 100
        assert metric("herald_platform_outage", labels) == 0  # over, and noticed
    assert {d.retries for d in deliveries.values()} == {0}
    summary = sim.audit.summary()
    assert summary["posts"] == len(channels) * 3  # the quotas held every one of them
    assert (summary["duplicates"], summary["limit_violations"], summary["refused"]) == (0, 0, 0)
    assert all(seconds >= 2.9 for seconds in summary["down_s"].values())


def gaps(requests: Sequence[RequestRecord]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(requests)]


async def throttled_for_a_while(
    sim: Simulator, pipe: Pipeline, faults: FaultConfig, refusals: int
) -> list[RequestRecord]:
    """LinkedIn throttles (app-wide) until it has refused ``refusals`` requests, then lets
    everything through: one post first, then one on each of three more members while the
    first waits, so that four are held when each pause ends. The posts requests, in order."""
    members = [await pipe.channel(LI) for _ in range(4)]
    await pipe.schedule(members[:1], 1)
    sim.set_faults(LI, faults)
    engine, task, context = await pipe.start()
    try:
        await eventually(lambda: len(sim.audit.refusals(LI)) >= 1, within_s=30)
        for member in members[1:]:
            await pipe.schedule([member], 1)
        engine.notify()
        await eventually(lambda: len(sim.audit.refusals(LI)) >= refusals, within_s=30)
        sim.set_faults(LI, FaultConfig())
        await until_published(pipe, 4)
    finally:
        engine.request_stop()
        await task
        await context.__aexit__(None, None, None)
    return [r for r in sim.audit.requests(LI) if r.method == "POST"]


@pytest.fixture
async def sim():
    async with simulator() as running:
        yield running


async def test_a_throttle_with_a_regain_time_is_waited_out_with_one_request_per_pause(
    sim, tmp_path
):
    pipe = await open_pipeline(
        sim, tmp_path, engine={"throttle_pause_s": 0.1}, linkedin={"concurrency": 4}
    )
    try:
        posts = await throttled_for_a_while(
            sim, pipe, FaultConfig(throttle_rate=1.0, retry_after_s=1), refusals=4
        )
    finally:
        await pipe.store.close()
    refused = [r for r in posts if r.status == 429]
    assert len(refused) == len(sim.audit.refusals(LI)) >= 4
    assert sim.audit.summary()["limit_violations"] == 0
    # Each refusal paused LinkedIn for its Retry-After: one request, refused or not, a whole
    # second later, while the others it held back waited for its answer.
    throttled = posts[: posts.index(refused[-1]) + 2]
    assert min(gaps(throttled)) >= 0.95


async def test_a_throttle_that_names_no_end_is_met_with_doubling_pauses(sim, tmp_path):
    pipe = await open_pipeline(
        sim,
        tmp_path,
        engine={"throttle_pause_s": 0.25, "throttle_pause_cap_s": 10.0},
        linkedin={"concurrency": 4},
    )
    try:
        posts = await throttled_for_a_while(sim, pipe, FaultConfig(throttle_rate=1.0), refusals=5)
    finally:
        await pipe.store.close()
    refused = [r for r in posts if r.status == 429]
    waits = gaps(posts[: posts.index(refused[-1]) + 2])
    # 0.25 s, then 0.5, 1, 2, 4 while LinkedIn keeps saying "too many" without saying how
    # long (a fixed pause knocked every 0.25 s): one request per pause, each twice the last.
    for n, wait in enumerate(waits[:5]):
        assert wait >= 0.25 * 2**n - 0.05
    assert sim.audit.summary()["limit_violations"] == 0
