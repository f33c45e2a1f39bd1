"""An engine that starts counts what earlier engines sent: a restart is never a fresh quota."""

from __future__ import annotations

import asyncio
import logging

from herald.config import EngineSettings, Settings
from herald.engine import Engine
from herald.errors import ContentRejected, RequestNotSent
from herald.limits.rules import LimitRule, RollingWindow
from herald.states import DeliveryState
from herald.testing import FakeConnector, FakePlatform, StaticCredentials, channel, new_post
from herald.testing.virtual_time import running_clock

S = DeliveryState


def hourly(limit: int, *, refundable: bool = False) -> LimitRule:
    return LimitRule("page_calls", "calls", "channel", RollingWindow(limit, 3600), refundable)


def engine_for(store, connector, limit, *, shutdown_grace_s=2.0) -> Engine:
    """A new engine, as after a restart: its own limiter, with a rule of ``limit`` per hour."""
    engine = EngineSettings(
        check_delay_s=0.0, idle_recheck_s=0.5, hold_s=1.0, shutdown_grace_s=shutdown_grace_s
    )
    return Engine(
        Settings(engine=engine),
        store,
        {connector.platform: connector},
        credentials=StaticCredentials(),
        rules={connector.platform: (limit,)},
        exclusive=True,
        clock=running_clock(),
    )


async def drain(engine: Engine) -> None:
    await asyncio.wait_for(engine.run(burst=True), 20)


async def states(store):
    return {d.id: d for d in await store.list_deliveries(limit=100_000)}


async def first_send(store) -> float:
    """When the earliest recorded request started, Unix time."""
    started = [
        a.started_at
        for d in (await states(store)).values()
        for a in await store.list_attempts(d.id)
    ]
    return min(started).timestamp()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class EngineRestartSuite:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def test_a_new_engine_does_not_get_a_fresh_quota(self, store):
        world, fb = FakePlatform(), channel()
        await store.add_channels([fb])
        conn = FakeConnector(fb.platform, world)
        await store.add_posts([new_post([fb]) for _ in range(3)])
        await drain(engine_for(store, conn, hourly(3)))
        assert world.published() == 3
        window_frees = await first_send(store) + 3600

        later = await store.add_posts([new_post([fb]) for _ in range(3)])
        logger, seen = logging.getLogger("herald.engine"), Records()
        logger.addHandler(seen)
        level = logger.level
        logger.setLevel(logging.INFO)
        try:
            await drain(engine_for(store, conn, hourly(3)))  # a restart
        finally:
            logger.removeHandler(seen)
            logger.setLevel(level)
        assert world.published() == 3  # the platform still counts the first three
        got = await states(store)
        for delivery in later:
            waiting = got[delivery.id]
            assert (waiting.state, waiting.attempts) == (S.SCHEDULED, 0)
            # Deferred to when the first grant leaves the rolling hour, not a moment sooner.
            assert window_frees - 0.01 <= waiting.next_attempt_at.timestamp() < window_frees + 5
        (restored,) = [r for r in seen.records if r.msg == "engine.limits_restored"]
        assert restored.requests == 3

    async def test_failed_publishes_give_back_refundable_units_across_a_restart(self, store):
        world, fb = FakePlatform(), channel()
        await store.add_channels([fb])
        bad = ContentRejected("(#100) refused")
        conn = FakeConnector(fb.platform, world, script={"bad": [bad]})
        await store.add_posts([new_post([fb], text="bad"), new_post([fb], text="good")])
        await drain(engine_for(store, conn, hourly(2, refundable=True)))
        assert sorted(d.state for d in (await states(store)).values()) == [S.FAILED, S.PUBLISHED]

        later = await store.add_posts([new_post([fb]) for _ in range(2)])
        await drain(engine_for(store, conn, hourly(2, refundable=True)))
        # One unit used by "good"; "bad" gave its unit back: one more fits, the other waits.
        got = await states(store)
        assert sorted(got[d.id].state for d in later) == [S.PUBLISHED, S.SCHEDULED]
        assert world.published() == 2

    async def test_a_request_abandoned_at_shutdown_still_counts(self, store):
        world, fb = FakePlatform(), channel()
        await store.add_channels([fb])
        slow = FakeConnector(fb.platform, world, latency_s=5.0)
        await store.add_posts([new_post([fb], text="slow")])
        engine = engine_for(store, slow, hourly(1), shutdown_grace_s=0.1)
        task = asyncio.create_task(engine.run())
        await world.wait_until(lambda: slow.in_flight > 0)
        engine.request_stop()
        await asyncio.wait_for(task, 5)
        (abandoned,) = (await states(store)).values()
        assert abandoned.state is S.UNCONFIRMED  # its request left; no outcome was recorded

        later = await store.add_posts([new_post([fb])])
        conn = FakeConnector(fb.platform, world)
        await drain(engine_for(store, conn, hourly(1)))
        # The platform may have counted the abandoned request: the hour's one request is spent.
        # The look-up (free here) finds nothing, and neither delivery is sent in this hour.
        assert world.arrivals[1:] == []
        got = await states(store)
        assert got[later[0].id].state is S.SCHEDULED
        assert got[abandoned.id].attempts == 1

    async def test_requests_that_never_left_count_neither_now_nor_after_a_restart(self, store):
        world, fb = FakePlatform(), channel()
        await store.add_channels([fb])
        refused = [RequestNotSent("facebook: request not sent") for _ in range(3)]
        conn = FakeConnector(fb.platform, world, script={"first": refused})
        await store.add_posts([new_post([fb], text="first")])
        await drain(engine_for(store, conn, hourly(2)))
        # Three refused connections, then a publish, under two an hour: only the publish counts.
        (first,) = (await states(store)).values()
        assert (first.state, first.retries) == (S.PUBLISHED, 0)
        outcomes = [a.outcome for a in await store.list_attempts(first.id)]
        assert outcomes == ["not_sent", "not_sent", "not_sent", "published"]

        later = await store.add_posts([new_post([fb])])
        await drain(engine_for(store, conn, hourly(2)))
        # The next engine replays the one publish: the hour's second request is still free.
        assert (await states(store))[later[0].id].state is S.PUBLISHED
        assert world.published() == 2
