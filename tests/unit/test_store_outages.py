"""The store going away does not stop the engine: each of its loops tries again after a
back-off, the engine reports itself not ready meanwhile, and nothing is lost, sent twice, or
sent at all while the store cannot record it. On the memory and SQLite stores, behind a
double that fails chosen calls (tests/suites/flaky.py), on virtual time."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from herald.domain import Platform
from herald.engine import Engine
from herald.errors import OutcomeUnknown
from herald.limits.rules import LimitRule, RollingWindow
from herald.testing import (
    FakeConnector,
    FakePlatform,
    StaticCredentials,
    channel,
    eventually,
    new_post,
)
from herald.testing.virtual_time import running_clock
from tests.suites.engine import S, settings, states
from tests.suites.flaky import FlakyStore

pytestmark = pytest.mark.virtual_time

HOURLY = LimitRule("page_calls", "calls", "channel", RollingWindow(1000, 3600))


def engine_on(flaky: FlakyStore, connector: FakeConnector, cfg=None, **kw) -> Engine:
    engine = Engine(
        cfg or settings(),
        flaky,  # type: ignore[arg-type]
        {connector.platform: connector},
        credentials=StaticCredentials(),
        rules={connector.platform: (HOURLY,)},
        clock=running_clock(),
        **kw,
    )
    flaky.readiness = lambda: engine.ready
    return engine


async def scheduled(store, count: int):
    fb = channel(Platform.FACEBOOK)
    await store.add_channels([fb])
    await store.add_posts([new_post([fb], text=f"post {i}") for i in range(count)])
    return fb


async def run_until(engine: Engine, done, timeout_s: float = 600.0) -> None:
    """Run ``engine`` until ``done()`` holds, then stop it; its own error, if any, raised."""
    running = asyncio.create_task(engine.run())
    try:
        waiting = asyncio.create_task(done())
        finished, _ = await asyncio.wait(
            {running, waiting}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        if running in finished:
            running.result()  # the engine stopped by itself: say why
            pytest.fail("the engine stopped by itself")
        assert waiting in finished, "timed out"
        waiting.result()
        assert engine.ready
    finally:
        engine.request_stop()
        await running


def events(caplog) -> list[str]:
    return [r.msg for r in caplog.records if str(r.msg).startswith("engine.store_")]


def alternate(logged: list[str]) -> bool:
    """Outages logged once each, each ended by the store coming back."""
    pairs = ["engine.store_unavailable", "engine.store_back"] * (len(logged) // 2)
    return bool(logged) and logged == pairs


async def test_the_dispatcher_claims_again_once_the_store_answers(store, caplog):
    await scheduled(store, 5)
    flaky = FlakyStore(store, {"claim_due": 3, "next_due_at": 2})
    world = FakePlatform()
    engine = engine_on(flaky, FakeConnector(Platform.FACEBOOK, world))

    async def done() -> None:
        await world.wait_until(lambda: world.published() == 5)
        await eventually(lambda: flaky.calls["next_due_at"] > 2)  # it failed twice, and went on

    with caplog.at_level(logging.WARNING, logger="herald.engine"):
        await run_until(engine, done)
    assert (flaky.failures["claim_due"], flaky.failures["next_due_at"]) == (3, 2)
    assert world.duplicates() == 0
    claims = [ready for name, ready in flaky.observed if name == "claim_due"]
    assert claims[:5] == [True, False, False, False, True]  # not ready until it answered
    assert alternate(events(caplog))  # once per outage, each ending with the store back
    sample = engine.metrics.registry.get_sample_value
    assert sample("herald_store_unavailable_total", {"task": "dispatcher"}) == 5


async def test_the_lease_keeper_carries_on_through_failed_beats_and_renewals(store):
    await scheduled(store, 3)
    flaky = FlakyStore(store)
    world = FakePlatform()
    cfg = settings(lease_s=10.0, heartbeat_s=0.5, dead_after_s=2.0)
    cfg.facebook.concurrency = 1
    # Each request takes longer than a lease: only renewals keep the claims this engine's.
    engine = engine_on(flaky, FakeConnector(Platform.FACEBOOK, world, latency_s=12.0), cfg)

    async def done() -> None:
        await world.wait_until(lambda: len(world.arrivals) == 1)
        flaky.failing.update(
            beat=3, extend_leases=2, recover_expired_leases=2, recover_dead_engines=2
        )
        await world.wait_until(lambda: world.published() == 3, timeout_s=120)

    await run_until(engine, done)
    for name in ("beat", "extend_leases", "recover_expired_leases", "recover_dead_engines"):
        assert flaky.calls[name] > flaky.failures[name] > 0, name
    got = await states(store)
    assert {(d.state, d.attempts) for d in got.values()} == {(S.PUBLISHED, 1)}
    assert world.duplicates() == 0


async def test_start_up_waits_for_the_store_to_register_recover_and_replay(store):
    await scheduled(store, 3)
    failing = {"beat": 2, "recover_expired_leases": 2, "sent_since": 3}
    flaky = FlakyStore(store, failing)
    world = FakePlatform()
    engine = engine_on(flaky, FakeConnector(Platform.FACEBOOK, world))
    await asyncio.wait_for(engine.run(burst=True), 60)
    assert dict(flaky.failures) == failing
    assert flaky.calls["sent_since"] == 4  # the limiter was rebuilt once the store answered
    assert world.published() == 3


async def test_a_minute_without_the_store_loses_nothing_and_sends_nothing(store, caplog):
    await scheduled(store, 12)
    flaky = FlakyStore(store)
    world = FakePlatform()
    cfg = settings()
    cfg.facebook.concurrency = 2
    engine = engine_on(flaky, FakeConnector(Platform.FACEBOOK, world, latency_s=0.5), cfg)
    loop = asyncio.get_running_loop()
    outage: list[float] = []

    async def away_for_a_minute() -> None:
        await world.wait_until(lambda: world.published() >= 2)
        flaky.away = True
        outage.append(loop.time())
        await asyncio.sleep(60)
        assert not engine.ready
        flaky.away = False
        outage.append(loop.time())

    down = asyncio.create_task(away_for_a_minute())
    with caplog.at_level(logging.WARNING, logger="herald.engine"):
        await asyncio.wait_for(engine.run(burst=True), 600)
    await down
    got = await states(store)
    assert {(d.state, d.attempts) for d in got.values()} == {(S.PUBLISHED, 1)}
    assert world.published() == 12
    assert world.duplicates() == 0
    start, end = outage
    # Nothing left while nothing could be recorded: publishing is committed first.
    assert not [t for t in world.arrivals if start < t < end]
    assert flaky.failures["apply"] > 0  # the writer was among those kept waiting
    # Not ready while away (a call begun just before may still have answered once).
    assert alternate(events(caplog))
    during = [ready for name, ready in flaky.observed_away]
    assert during.count(False) > 0.9 * len(during)


async def test_a_burst_run_waiting_for_work_outlasts_the_store_going_away(store):
    fb = channel(Platform.FACEBOOK)
    await store.add_channels([fb])
    due = running_clock().now() + timedelta(seconds=5)
    await store.add_posts([new_post([fb], due_at=due) for _ in range(3)])
    flaky = FlakyStore(store)
    world = FakePlatform()
    engine = engine_on(flaky, FakeConnector(Platform.FACEBOOK, world))

    async def away_while_idle() -> None:
        await asyncio.sleep(1)  # nothing in flight: the burst run asks the store what is due
        flaky.away = True
        await asyncio.sleep(2)
        flaky.away = False

    down = asyncio.create_task(away_while_idle())
    await asyncio.wait_for(engine.run(burst=True, burst_horizon_s=60), 60)
    await down
    assert flaky.failures["next_due_at"] > 0
    assert world.published() == 3


async def test_a_judge_waits_for_a_clean_record_before_taking_another_engine_s_work(store):
    fb = await scheduled(store, 1)
    loop = asyncio.get_running_loop()
    now, started = running_clock().now(), loop.time()
    ghost = Engine(settings(), store, {}, credentials=StaticCredentials()).identity
    await store.beat(ghost, now)  # it dies at once, holding the delivery for a year
    await store.claim_due(
        now=now,
        limit=1,
        lease_until=now + timedelta(days=300),
        expire_before=now - timedelta(days=1),
        engine_id=ghost.id,
    )
    flaky = FlakyStore(store)
    world = FakePlatform()
    cfg = settings(heartbeat_s=0.5, dead_after_s=2.0)
    engine = engine_on(flaky, FakeConnector(fb.platform, world), cfg)

    async def done() -> None:
        await asyncio.sleep(0.1)
        flaky.failing["beat"] = 4  # its own beats fail: the store may be away for everyone
        await world.wait_until(lambda: world.published() == 1, timeout_s=60)

    await run_until(engine, done)
    assert flaky.failures["beat"] == 4
    (delivery,) = (await states(store)).values()
    assert delivery.published_at is not None
    published = started + (delivery.published_at - now).total_seconds()
    # The ghost's claim came back dead_after_s after this engine's last failure, not before.
    assert published - flaky.failed_at[-1] >= 2.0


async def test_a_look_up_that_finds_nothing_outlasts_the_store_going_away(store, caplog):
    # The first send's answer is lost (nothing was made); the look-up finds nothing, and the
    # store is away when the engine reads the send's attempts to know whether the listing has
    # settled. The read is tried again once the store answers, as every write is: the post
    # goes out then, not a lease later, and no bug is logged.
    fb = await scheduled(store, 0)
    await store.add_posts([new_post([fb], text="lost")])
    flaky = FlakyStore(store, {"list_attempts": 2})
    world = FakePlatform()
    lost = OutcomeUnknown("the connection dropped before the answer")
    engine = engine_on(flaky, FakeConnector(Platform.FACEBOOK, world, script={"lost": [lost]}))

    async def done() -> None:
        await world.wait_until(lambda: world.published() == 1, timeout_s=60)

    with caplog.at_level(logging.ERROR, logger="herald.worker"):
        await run_until(engine, done, timeout_s=120)
    assert flaky.failures["list_attempts"] == 2
    assert [r.msg for r in caplog.records if r.name == "herald.worker"] == []
    got = await states(store)
    assert {(d.state, d.attempts) for d in got.values()} == {(S.PUBLISHED, 2)}
    assert world.duplicates() == 0


async def test_a_stop_leaves_the_registry_once_the_store_answers_again(store):
    # The store is away a moment as the engine stops: leaving the registry is tried again
    # after a back-off (within the grace), not given up on a first failure.
    await scheduled(store, 2)
    flaky = FlakyStore(store, {"deregister_engine": 1})
    world = FakePlatform()
    engine = engine_on(flaky, FakeConnector(Platform.FACEBOOK, world))
    await asyncio.wait_for(engine.run(burst=True), 60)
    assert world.published() == 2
    assert flaky.calls["deregister_engine"] == 2
    assert await store.list_engines() == []
