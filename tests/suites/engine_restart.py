"""An engine that starts counts what earlier engines sent: a restart is never a fresh quota."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from herald.config import EngineSettings, Settings
from herald.engine import Engine
from herald.errors import ContentRejected, OutcomeUnknown, RequestNotSent, TransientPlatformError
from herald.limits.rules import LimitRule, RollingWindow
from herald.states import DeliveryState
from herald.testing import FakeConnector, FakePlatform, StaticCredentials, channel, new_post
from herald.testing.platform import COMMIT_THEN_UNKNOWN
from herald.testing.virtual_time import running_clock
from herald.types import Published

S = DeliveryState


def hourly(limit: int, *, refundable: bool = False) -> LimitRule:
    return LimitRule("page_calls", "calls", "channel", RollingWindow(limit, 3600), refundable)


def engine_for(store, connector, limit, *, shutdown_grace_s=2.0) -> Engine:
    """A new engine, as after a restart: its own limiter, with a rule of ``limit`` per hour."""
    engine = EngineSettings(
        check_delay_s=0.0,
        idle_recheck_s=0.5,
        hold_s=1.0,
        shutdown_grace_s=shutdown_grace_s,
        listing_settle_s=0.0,
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


async def one_post(store, text: str):
    """A platform, a channel on it in ``store``, and the delivery of one post to it."""
    world, fb = FakePlatform(), channel()
    await store.add_channels([fb])
    (delivery,) = await store.add_posts([new_post([fb], text=text)])
    return world, fb, delivery


def most_in_an_hour(arrivals: list[float]) -> int:
    """The most requests the platform received within any rolling hour."""
    times = sorted(arrivals)
    return max(
        (sum(1 for t in times[i:] if t < start + 3600) for i, start in enumerate(times)), default=0
    )


class Hang(FakeConnector):
    """The platform counts the request and (``commit``) takes the post, and the answer never
    comes: the engine is killed while it waits."""

    def __init__(self, platform, world, *, commit: bool) -> None:
        super().__init__(platform, world)
        self.commit = commit

    async def publish(self, request):
        self.world.calls.append(("publish", request.delivery_id))
        self.world.arrivals.append(asyncio.get_running_loop().time())
        if self.commit:
            self.world.commit(request.channel.external_id, request.content.text)
        self.in_flight += 1
        await self.world.changed()
        await asyncio.Event().wait()  # until the kill cancels it


class SlowSecond(FakeConnector):
    """Its second publish takes a minute to answer; the others answer at once."""

    async def publish(self, request):
        self.latency_s = 60.0 if request.attempt == 2 else 0.0
        return await super().publish(request)


class Paging(FakeConnector):
    """Graph-like meters: every request is one call, a look-up reads two listing pages (the
    second reserved through the request's meter, as a real connector does). ``requests``:
    the loop's time of every request the platform received."""

    def __init__(self, platform, world, **kw) -> None:
        super().__init__(platform, world, **kw)
        self.requests: list[float] = []

    def lookup_usage(self):
        return {"calls": 1}

    async def publish(self, request):
        self.requests.append(asyncio.get_running_loop().time())
        return await super().publish(request)

    async def find(self, request):
        loop = asyncio.get_running_loop()
        self.requests.append(loop.time())  # the first page
        await request.meter({"calls": 1})
        self.requests.append(loop.time())  # the second
        ids = self.world.posts.get((request.channel.external_id, request.content.text))
        return Published(ids[0]) if ids else None


async def killed_while_sending(store, connector, limit) -> None:
    """Run an engine until ``connector`` holds a request, then kill it: no graceful stop, no
    hand-back; the store keeps what was written (the delivery stays ``publishing``)."""
    engine = engine_for(store, connector, limit)
    task = asyncio.create_task(engine.run())
    await connector.world.wait_until(lambda: connector.in_flight > 0)
    sending = [t for lane in engine.pool.lanes.values() for t in lane.tasks]
    for running in (task, *sending):
        running.cancel()
    for running in (task, *sending):
        with contextlib.suppress(asyncio.CancelledError):
            await running


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

    @pytest.mark.parametrize("landed", [True, False], ids=["landed", "lost"])
    async def test_a_send_in_flight_at_a_kill_counts_after_its_look_up(self, store, landed):
        world, fb, flying = await one_post(store, "in flight")
        await killed_while_sending(store, Hang(fb.platform, world, commit=landed), hourly(2))
        assert (await store.get_delivery(flying.id)).state is S.PUBLISHING

        conn = FakeConnector(fb.platform, world)
        await drain(engine_for(store, conn, hourly(2)))  # recovers it and looks it up
        got = await store.get_delivery(flying.id)
        assert (got.state, got.reconciled) == (S.PUBLISHED, landed)
        assert len(world.arrivals) == (1 if landed else 2)  # found, or sent again

        later = await store.add_posts([new_post([fb]) for _ in range(2)])
        await drain(engine_for(store, conn, hourly(2)))
        # The platform counted the killed engine's request whatever the look-up found.
        got = await states(store)
        sent = sum(got[d.id].state is S.PUBLISHED for d in later)
        assert sent == (1 if landed else 0)
        assert most_in_an_hour(world.arrivals) == 2
        assert world.duplicates() == 0

    async def test_a_retry_in_flight_at_a_stop_is_looked_up_and_still_counts(self, store):
        world, fb, flying = await one_post(store, "retried")
        slow = SlowSecond(fb.platform, world, script={"retried": [TransientPlatformError("503")]})
        engine = engine_for(store, slow, hourly(3), shutdown_grace_s=0.1)
        task = asyncio.create_task(engine.run())
        await world.wait_until(lambda: slow.in_flight > 0 and len(world.arrivals) == 2, 600)
        engine.request_stop()
        await asyncio.wait_for(task, 5)
        got = await store.get_delivery(flying.id)
        # Its second request was on the wire: looked up before anything is sent again.
        assert (got.state, got.check_first, got.attempts) == (S.UNCONFIRMED, True, 2)

        conn = FakeConnector(fb.platform, world)
        await drain(engine_for(store, conn, hourly(3)))  # not found: sent a third time
        assert (await store.get_delivery(flying.id)).state is S.PUBLISHED
        (later,) = await store.add_posts([new_post([fb])])
        await drain(engine_for(store, conn, hourly(3)))
        assert (await store.get_delivery(later.id)).state is S.SCHEDULED
        assert most_in_an_hour(world.arrivals) == 3
        assert world.duplicates() == 0

    async def test_a_look_up_s_further_pages_count_across_a_restart(self, store):
        world, fb, unsure = await one_post(store, "unsure")
        conn = Paging(fb.platform, world, script={"unsure": [COMMIT_THEN_UNKNOWN]})
        await drain(engine_for(store, conn, hourly(4)))
        # The send, then a look-up of two pages that found the post: three calls.
        assert (await store.get_delivery(unsure.id)).state is S.PUBLISHED
        assert len(conn.requests) == 3

        later = await store.add_posts([new_post([fb]) for _ in range(2)])
        await drain(engine_for(store, conn, hourly(4)))
        got = await states(store)
        assert sorted(got[d.id].state for d in later) == [S.PUBLISHED, S.SCHEDULED]
        assert most_in_an_hour(conn.requests) == 4

    async def test_a_look_up_counts_when_the_resend_it_allows_must_wait(self, store):
        world, fb, lost = await one_post(store, "lost")
        conn = Paging(fb.platform, world, script={"lost": [OutcomeUnknown("timeout")]})
        await drain(engine_for(store, conn, hourly(3)))
        # The send and the look-up's two pages used the hour: the resend waits for the window,
        # handed back with the look-up's record.
        got = await store.get_delivery(lost.id)
        assert (got.state, got.check_first) == (S.RETRY_WAIT, False)
        assert [a.outcome for a in await store.list_attempts(lost.id)] == ["unknown", "not_found"]
        assert len(conn.requests) == 3

        (later,) = await store.add_posts([new_post([fb])])
        await drain(engine_for(store, conn, hourly(3)))
        assert (await store.get_delivery(later.id)).state is S.SCHEDULED
        assert most_in_an_hour(conn.requests) == 3

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
