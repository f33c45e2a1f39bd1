"""A real `herald run` process against the simulator: SIGTERM and kill -9 lose nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from herald.config import Settings
from herald.domain import Platform
from herald.simulator import LatencyModel, Simulator, SimulatorConfig
from herald.states import DeliveryState
from herald.testing import eventually
from tests.integration.pipeline import FAST_ENGINE, FAST_LISTINGS, open_pipeline

S = DeliveryState
POSTS = 240


def engine_env(sim: Simulator, db: str) -> dict[str, str]:
    env = dict(os.environ)
    for section, values in sim.settings_overrides().items():
        for key, value in values.items():
            env[f"HERALD_{section.upper()}__{key.upper()}"] = value
    env.update(
        {
            "HERALD_DB": db,
            "HERALD_LOG_LEVEL": "WARNING",
            "HERALD_ENGINE__CHECK_DELAY_S": "0.2",
            "HERALD_ENGINE__LISTING_SETTLE_S": str(FAST_ENGINE["listing_settle_s"]),
            "HERALD_ENGINE__SHUTDOWN_GRACE_S": "5",
            "HERALD_ENGINE__SQLITE_SYNCHRONOUS": "NORMAL",
            "HERALD_INSTAGRAM__POLL_INITIAL_S": "0.05",
            "HERALD_FACEBOOK__CONCURRENCY": "2",
            "HERALD_LINKEDIN__CONCURRENCY": "2",
        }
    )
    return env


async def spawn(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", "run", *args, env=env
    )


@pytest.fixture
async def sim():
    config = SimulatorConfig.from_settings(
        Settings(),
        latency=LatencyModel(median_s=0.02, p99_s=0.05),
        seed=5,
        listing_lag=FAST_LISTINGS,
    )
    async with Simulator(config) as simulator:
        yield simulator


async def prepared(sim, tmp_path):
    pipe = await open_pipeline(sim, tmp_path)
    channels = [await pipe.channel(p) for p in (Platform.FACEBOOK, Platform.LINKEDIN)]
    for i in range(POSTS):
        await pipe.schedule([channels[i % 2]])
    await pipe.store.close()
    return pipe


async def settle(pipe, sim, env):
    """A second engine run finishes the rest; the platforms then hold each post once."""
    process = await spawn(env, "--burst")
    assert await asyncio.wait_for(process.wait(), 60) == 0
    await pipe.store.open()
    try:
        deliveries = await pipe.deliveries()
    finally:
        await pipe.store.close()
    summary = sim.audit.summary()
    assert {d.state for d in deliveries.values()} == {S.PUBLISHED}
    assert summary["posts"] == POSTS
    assert (summary["duplicates"], summary["duplicates_refused"]) == (0, 0)  # none resent
    held = {p.post_id for p in sim.audit.posts()}
    assert {d.external_id for d in deliveries.values() if not d.reconciled} <= held
    return deliveries


async def test_sigterm_finishes_in_flight_work_and_hands_the_rest_back(sim, tmp_path):
    pipe = await prepared(sim, tmp_path)
    env = engine_env(sim, str(tmp_path / "herald.db"))
    process = await spawn(env)
    await eventually(lambda: sim.audit.summary()["posts"] >= 40, within_s=30)
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    await pipe.store.open()
    try:
        after_stop = await pipe.deliveries()
    finally:
        await pipe.store.close()
    states = {d.state for d in after_stop.values()}
    assert states <= {S.PUBLISHED, S.SCHEDULED}  # nothing left claimed or in flight
    published = sum(d.state is S.PUBLISHED for d in after_stop.values())
    assert published == sim.audit.summary()["posts"] < POSTS
    await settle(pipe, sim, env)


async def test_kill_9_loses_nothing_and_duplicates_nothing(sim, tmp_path):
    pipe = await prepared(sim, tmp_path)
    env = engine_env(sim, str(tmp_path / "herald.db"))
    process = await spawn(env)
    await eventually(lambda: sim.audit.summary()["posts"] >= 60, within_s=30)
    process.kill()
    await process.wait()
    await pipe.store.open()
    try:
        left = {d.state for d in (await pipe.deliveries()).values()}
    finally:
        await pipe.store.close()
    assert left & {S.CLAIMED, S.PUBLISHING}, "the kill did not interrupt any work"
    await settle(pipe, sim, env)
