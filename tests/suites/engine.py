"""Engine behaviour on an in-memory platform: retries, pauses, checks, expiry, shutdown.

Every time comes from :func:`herald.testing.running_clock`: the unit tier runs this suite on
virtual time (its waits take no real time), the integration tier on real time.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from herald.config import EngineSettings, Settings
from herald.domain import ChannelStatus, Platform
from herald.engine import Engine
from herald.errors import (
    AuthExpired,
    ContentRejected,
    RateLimited,
    TransientPlatformError,
)
from herald.limits.rules import LimitRule, RollingWindow
from herald.states import DeliveryState
from herald.testing import FakeConnector, FakePlatform, StaticCredentials, channel, new_post
from herald.testing.virtual_time import running_clock

S = DeliveryState


def settings(**engine) -> Settings:
    base = {
        "check_delay_s": 0.0,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
        "throttle_pause_s": 0.3,
        "idle_recheck_s": 0.5,
        "shutdown_grace_s": 2.0,
        "hold_s": 1.0,
        "listing_settle_s": 0.0,
    }
    base.update(engine)
    return Settings(engine=EngineSettings(**base))


def engine_for(store, connectors, cfg=None, credentials=None, rules=None) -> Engine:
    return Engine(
        cfg or settings(),
        store,
        connectors,
        credentials=credentials or StaticCredentials(),
        rules=rules or {p: () for p in connectors},
        exclusive=True,
        clock=running_clock(),
    )


def utcnow() -> datetime:
    """The time now as the engine under test sees it (virtual on a virtual-time loop)."""
    return running_clock().now()


async def drain(engine: Engine, within_s: float = 20.0) -> None:
    await asyncio.wait_for(engine.run(burst=True), within_s)


async def states(store):
    return {d.id: d for d in await store.list_deliveries(limit=100_000)}


class EngineSuite:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    @pytest.fixture
    def world(self):
        return FakePlatform()

    async def test_publishes_every_due_delivery_once(self, store, world):
        fbs = [channel(Platform.FACEBOOK) for _ in range(3)]
        await store.add_channels(fbs)
        await store.add_posts([new_post([c]) for c in fbs for _ in range(20)])
        fb = FakeConnector(Platform.FACEBOOK, world)
        await drain(engine_for(store, {Platform.FACEBOOK: fb}))
        got = await states(store)
        assert {d.state for d in got.values()} == {S.PUBLISHED}
        assert all(d.external_id and d.attempts == 1 for d in got.values())
        assert world.published() == 60
        assert world.duplicates() == 0

    async def test_concurrency_cap_is_never_exceeded(self, store, world):
        fb = channel(Platform.FACEBOOK)
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(40)])
        conn = FakeConnector(Platform.FACEBOOK, world, latency_s=0.01)
        cfg = settings()
        cfg.facebook.concurrency = 3
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, cfg))
        assert conn.max_in_flight == 3
        assert world.published() == 40

    async def test_transient_errors_retry_with_backoff_then_succeed(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        new = new_post([fb], text="flaky")
        await store.add_posts([new])
        boom = TransientPlatformError("503")
        conn = FakeConnector(Platform.FACEBOOK, world, script={"flaky": [boom, boom]})
        await drain(engine_for(store, {Platform.FACEBOOK: conn}))
        (d,) = (await states(store)).values()
        assert (d.state, d.attempts, d.retries) == (S.PUBLISHED, 3, 2)
        outcomes = [a.outcome for a in await store.list_attempts(d.id)]
        assert outcomes == ["transient", "transient", "published"]

    async def test_retries_are_bounded(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="down")])
        conn = FakeConnector(
            Platform.FACEBOOK, world, script={"down": [TransientPlatformError("503")] * 10}
        )
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, settings(max_retries=2)))
        (d,) = (await states(store)).values()
        assert (d.state, d.attempts) == (S.FAILED, 3)
        assert "gave up after 2 retries" in d.last_error
        assert world.published() == 0

    async def test_rejected_content_fails_without_retry(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="bad")])
        conn = FakeConnector(Platform.FACEBOOK, world, script={"bad": [ContentRejected("(#100)")]})
        await drain(engine_for(store, {Platform.FACEBOOK: conn}))
        (d,) = (await states(store)).values()
        assert (d.state, d.attempts, d.retries) == (S.FAILED, 1, 0)

    async def test_rate_limit_signal_pauses_the_channel_without_spending_retries(
        self, store, world
    ):
        throttled, other = channel(), channel()
        await store.add_channels([throttled, other])
        await store.add_posts([new_post([throttled], text="t1"), new_post([throttled], text="t2")])
        await store.add_posts([new_post([other], text="o1")])
        signal = RateLimited("(#32) Page request limit reached", retry_after=0.4, scope="channel")
        conn = FakeConnector(Platform.FACEBOOK, world, script={"t1": [signal]})
        started = utcnow()
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, settings(max_retries=0)))
        got = await states(store)
        assert {d.state for d in got.values()} == {S.PUBLISHED}
        assert all(d.retries == 0 for d in got.values())
        # Nothing went to the throttled Page during its pause; the other channel went on.
        t1 = next(d for d in got.values() if d.attempts == 2)
        assert t1.published_at - started >= timedelta(seconds=0.4)

    async def test_app_wide_pause_holds_every_channel(self, store, world):
        a, b = channel(), channel()
        await store.add_channels([a, b])
        # Due before the others, so it goes first even if they share one clock reading.
        await store.add_posts([new_post([a], text="first", due_at=utcnow() - timedelta(seconds=2))])
        await store.add_posts([new_post([b], text=f"b{i}") for i in range(3)])
        signal = RateLimited("(#4) Application request limit reached", retry_after=0.5, scope="app")
        conn = FakeConnector(Platform.FACEBOOK, world, script={"first": [signal]}, latency_s=0.02)
        cfg = settings()
        cfg.facebook.concurrency = 1
        started = utcnow()
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, cfg))
        got = sorted((await states(store)).values(), key=lambda d: d.published_at)
        assert all(d.state is S.PUBLISHED for d in got)
        assert all(d.published_at - started >= timedelta(seconds=0.5) for d in got)

    async def test_limiter_makes_deliveries_wait_without_exceeding(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(6)])
        rule = LimitRule("page_calls", "calls", "channel", RollingWindow(3, 0.6, margin_s=0.1))
        conn = FakeConnector(Platform.FACEBOOK, world)
        await drain(
            engine_for(store, {Platform.FACEBOOK: conn}, rules={Platform.FACEBOOK: (rule,)})
        )
        arrivals = sorted(world.arrivals)
        assert len(arrivals) == 6
        # The platform never sees more than 3 within any 0.6 s window; the second three waited.
        for i in range(3, 6):
            assert arrivals[i] - arrivals[i - 3] >= 0.6
        assert arrivals[-1] - arrivals[0] < 2.0

    async def test_long_limit_waits_go_back_to_the_store(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(3)])
        rule = LimitRule("page_calls", "calls", "channel", RollingWindow(1, 3600))
        conn = FakeConnector(Platform.FACEBOOK, world)
        await drain(
            engine_for(store, {Platform.FACEBOOK: conn}, rules={Platform.FACEBOOK: (rule,)}),
        )
        got = list((await states(store)).values())
        waiting = [d for d in got if d.state is S.SCHEDULED]
        assert sum(d.state is S.PUBLISHED for d in got) == 1
        assert len(waiting) == 2
        assert all(d.next_attempt_at > utcnow() + timedelta(minutes=50) for d in waiting)
        assert all(d.attempts == 0 for d in waiting)

    async def test_unknown_outcome_is_looked_up_and_never_sent_twice(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="dropped")])
        conn = FakeConnector(Platform.FACEBOOK, world, script={"dropped": ["commit-then-unknown"]})
        await drain(engine_for(store, {Platform.FACEBOOK: conn}))
        (d,) = (await states(store)).values()
        assert (d.state, d.reconciled, d.attempts) == (S.PUBLISHED, True, 1)
        assert world.published() == 1
        assert [kind for kind, _ in world.calls] == ["publish", "find"]
        assert [a.outcome for a in await store.list_attempts(d.id)] == ["unknown", "found"]

    async def test_unknown_outcome_without_a_post_is_sent_again_after_the_check(self, store, world):
        from herald.errors import OutcomeUnknown

        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="lost")])
        conn = FakeConnector(Platform.FACEBOOK, world, script={"lost": [OutcomeUnknown("timeout")]})
        await drain(engine_for(store, {Platform.FACEBOOK: conn}))
        (d,) = (await states(store)).values()
        assert (d.state, d.reconciled, d.attempts) == (S.PUBLISHED, False, 2)
        assert [kind for kind, _ in world.calls] == ["publish", "find", "publish"]
        assert world.duplicates() == 0
        outcomes = [a.outcome for a in await store.list_attempts(d.id)]
        assert outcomes == ["unknown", "not_found", "published"]

    async def test_an_early_look_up_that_misses_a_lagging_post_is_not_trusted(self, store):
        # The post was made, its answer lost, and the listing shows it only after 3 s: the
        # first look-up (at once) misses it; Herald looks again once listings settle (5 s
        # after the send) and finds it, instead of sending it a second time.
        world = FakePlatform(listing_lag_s=3.0)
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="lagging")])
        conn = FakeConnector(Platform.FACEBOOK, world, script={"lagging": ["commit-then-unknown"]})
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, settings(listing_settle_s=5.0)))
        (d,) = (await states(store)).values()
        assert (d.state, d.reconciled, d.attempts) == (S.PUBLISHED, True, 1)
        assert world.duplicates() == 0
        assert [kind for kind, _ in world.calls] == ["publish", "find", "find"]
        attempts = await store.list_attempts(d.id)
        assert [a.outcome for a in attempts] == ["unknown", "not_listed_yet", "found"]
        # Settled 5 s after the ``publishing`` mark, a moment after the attempt's start; the
        # lag alone (3 s) would have allowed a look-up 2 s sooner.
        assert attempts[2].started_at - attempts[0].started_at >= timedelta(seconds=4.5)

    async def test_listings_settle_from_the_uncertain_request_not_from_the_mark(self, store):
        # A publish that takes its time before the call that creates the post (Instagram's
        # container and status polls, Facebook's photo uploads, LinkedIn's image upload: 4 s
        # here) commits the post well after the ``publishing`` mark, and its listing shows it
        # 3 s later still. ``listing_settle_s`` (5 s) covers the lag; measured from the mark,
        # it runs out before the post can show: the look-up then finds nothing, is trusted,
        # and the post is sent a second time.
        world = FakePlatform(listing_lag_s=3.0)
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="slow")])
        conn = FakeConnector(
            Platform.FACEBOOK, world, latency_s=4.0, script={"slow": ["commit-then-unknown"]}
        )
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, settings(listing_settle_s=5.0)))
        (d,) = (await states(store)).values()
        assert world.duplicates() == 0
        assert (d.state, d.reconciled, d.attempts) == (S.PUBLISHED, True, 1)

    async def test_a_look_up_after_listings_settle_that_finds_nothing_sends_again(self, store):
        from herald.errors import OutcomeUnknown

        world = FakePlatform()
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="lost")])
        conn = FakeConnector(Platform.FACEBOOK, world, script={"lost": [OutcomeUnknown("timeout")]})
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, settings(listing_settle_s=2.0)))
        (d,) = (await states(store)).values()
        assert (d.state, d.attempts, world.published()) == (S.PUBLISHED, 2, 1)
        outcomes = [a.outcome for a in await store.list_attempts(d.id)]
        assert outcomes == ["unknown", "not_listed_yet", "not_found", "published"]

    async def test_failing_checks_end_with_a_user_decision_not_a_resend(self, store, world):
        from herald.errors import OutcomeUnknown

        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="murky")])
        conn = FakeConnector(
            Platform.FACEBOOK,
            world,
            script={"murky": [OutcomeUnknown("timeout")]},
            find_script=[TransientPlatformError("500")] * 5,
        )
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, settings(max_checks=3)))
        (d,) = (await states(store)).values()
        assert (d.state, d.next_attempt_at, d.checks, d.attempts) == (S.UNCONFIRMED, None, 3, 1)
        assert [kind for kind, _ in world.calls] == ["publish", "find", "find", "find"]

    async def test_expired_deliveries_are_never_sent(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        now = utcnow()
        await store.add_posts([new_post([fb], due_at=now - timedelta(hours=2))])
        await store.add_posts([new_post([fb], due_at=now - timedelta(minutes=1))])
        conn = FakeConnector(Platform.FACEBOOK, world)
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, settings(max_lateness_s=3600)))
        got = sorted((await states(store)).values(), key=lambda d: d.due_at)
        assert [d.state for d in got] == [S.EXPIRED, S.PUBLISHED]
        assert world.published() == 1

    async def test_retry_past_max_lateness_expires(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts(
            [new_post([fb], text="late", due_at=utcnow() - timedelta(seconds=0.5))]
        )
        conn = FakeConnector(
            Platform.FACEBOOK,
            world,
            script={"late": [TransientPlatformError("503")] * 20},
        )
        cfg = settings(max_lateness_s=1.0, backoff_base_s=0.3, backoff_cap_s=0.3, max_retries=50)
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, cfg))
        (d,) = (await states(store)).values()
        assert d.state is S.EXPIRED
        assert world.published() == 0

    async def test_auth_failure_parks_the_channel(self, store, world):
        fb, other = channel(), channel()
        await store.add_channels([fb, other])
        now = utcnow()
        await store.add_posts([new_post([fb], text="a1", due_at=now - timedelta(seconds=2))])
        await store.add_posts([new_post([fb], text="a2", due_at=now - timedelta(seconds=1))])
        await store.add_posts([new_post([other], text="ok")])
        refused = [AuthExpired("code 190")]
        conn = FakeConnector(Platform.FACEBOOK, world, script={"a1": list(refused), "a2": refused})
        cfg = settings()
        cfg.facebook.concurrency = 1
        await drain(engine_for(store, {Platform.FACEBOOK: conn}, cfg))
        assert (await store.get_channel(fb.id)).status is ChannelStatus.NEEDS_REAUTH
        got = await states(store)
        parked = [d for d in got.values() if d.channel_id == fb.id]
        # Refused ones wait; one claimed before the refusal may have been handed back unsent.
        assert {d.state for d in parked} <= {S.RETRY_WAIT, S.SCHEDULED}
        assert all(d.state is S.SCHEDULED for d in parked if d.attempts == 0)
        assert [d.state for d in got.values() if d.channel_id == other.id] == [S.PUBLISHED]
        assert world.published() == 1
        # Re-authorised: the waiting deliveries go out, each once.
        conn.script.clear()
        await store.set_channel_status(fb.id, ChannelStatus.ACTIVE)
        await drain(engine_for(store, {Platform.FACEBOOK: conn}))
        assert {d.state for d in (await states(store)).values()} == {S.PUBLISHED}
        assert world.duplicates() == 0

    async def test_missing_credentials_park_the_channel_without_sending(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb])])
        conn = FakeConnector(Platform.FACEBOOK, world)
        engine = engine_for(
            store, {Platform.FACEBOOK: conn}, credentials=StaticCredentials({fb.id})
        )
        await drain(engine)
        assert (await store.get_channel(fb.id)).status is ChannelStatus.NEEDS_REAUTH
        (d,) = (await states(store)).values()
        assert (d.state, d.attempts) == (S.SCHEDULED, 0)
        assert world.calls == []

    async def test_graceful_shutdown_hands_everything_back(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(50)])
        conn = FakeConnector(Platform.FACEBOOK, world, latency_s=0.05)
        cfg = settings()
        cfg.facebook.concurrency = 2
        engine = engine_for(store, {Platform.FACEBOOK: conn}, cfg)
        task = asyncio.create_task(engine.run())
        await world.wait_until(lambda: world.published() >= 4)
        engine.request_stop()
        await asyncio.wait_for(task, 10)
        got = list((await states(store)).values())
        published = [d for d in got if d.state is S.PUBLISHED]
        assert len(published) == world.published()
        assert {d.state for d in got} <= {S.PUBLISHED, S.SCHEDULED}
        # A second run finishes the rest, and nothing is published twice.
        await drain(engine_for(store, {Platform.FACEBOOK: conn}))
        assert {d.state for d in (await states(store)).values()} == {S.PUBLISHED}
        assert world.published() == 50
        assert world.duplicates() == 0

    async def test_shutdown_past_grace_leaves_in_flight_requests_unconfirmed(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="slow")])
        conn = FakeConnector(Platform.FACEBOOK, world, latency_s=5.0)
        engine = engine_for(store, {Platform.FACEBOOK: conn}, settings(shutdown_grace_s=0.1))
        task = asyncio.create_task(engine.run())
        await world.wait_until(lambda: conn.in_flight > 0)
        engine.request_stop()
        await asyncio.wait_for(task, 5)
        (d,) = (await states(store)).values()
        assert (d.state, d.check_first) == (S.UNCONFIRMED, True)

    async def test_a_crashed_engine_s_deliveries_are_recovered(self, store, world):
        from herald.domain import Transition

        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="was-sent"), new_post([fb], text="never-sent")])
        now = utcnow()
        batch = await store.claim_due(
            now=now,
            limit=10,
            lease_until=now + timedelta(minutes=5),
            expire_before=now - timedelta(days=1),
        )
        sent = next(j for j in batch.jobs if j.content.text == "was-sent")
        await store.apply(
            [
                Transition(
                    sent.delivery.id,
                    S.PUBLISHING,
                    claim_token=sent.claim_token,
                    sent=True,
                    check_first=False,
                    check_since=now,
                )
            ]
        )
        world.commit(fb.external_id, "was-sent")  # the dead engine's request did land
        conn = FakeConnector(Platform.FACEBOOK, world)
        await drain(engine_for(store, {Platform.FACEBOOK: conn}))
        got = {d.id: d for d in (await states(store)).values()}
        assert got[sent.delivery.id].state is S.PUBLISHED
        assert got[sent.delivery.id].reconciled
        assert {d.state for d in got.values()} == {S.PUBLISHED}
        assert world.duplicates() == 0

    async def test_a_check_then_a_limit_wait_hands_the_delivery_back_and_finishes(
        self, store, world
    ):
        from herald.errors import OutcomeUnknown

        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="unsure")])
        rule = LimitRule("page_calls", "calls", "channel", RollingWindow(1, 0.5))
        conn = FakeConnector(
            Platform.FACEBOOK, world, script={"unsure": [OutcomeUnknown("timeout")]}
        )
        await drain(
            engine_for(store, {Platform.FACEBOOK: conn}, rules={Platform.FACEBOOK: (rule,)})
        )
        (d,) = (await states(store)).values()
        assert (d.state, d.attempts) == (S.PUBLISHED, 2)
        assert [kind for kind, _ in world.calls] == ["publish", "find", "publish"]

    async def test_a_delivery_that_expires_while_waiting_for_a_limit_settles(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], due_at=utcnow()) for _ in range(2)])
        rule = LimitRule("page_calls", "calls", "channel", RollingWindow(1, 1.5))
        conn = FakeConnector(Platform.FACEBOOK, world)
        cfg = settings(max_lateness_s=1.0, hold_s=3.0)
        await drain(
            engine_for(store, {Platform.FACEBOOK: conn}, cfg, rules={Platform.FACEBOOK: (rule,)})
        )
        assert sorted(d.state for d in (await states(store)).values()) == [S.EXPIRED, S.PUBLISHED]
        assert world.published() == 1

    async def test_stop_is_prompt_and_sends_nothing_after_it(self, store, world):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text=f"slow {i}") for i in range(3)])
        conn = FakeConnector(Platform.FACEBOOK, world, latency_s=3.0)
        cfg = settings(shutdown_grace_s=0.2)
        cfg.facebook.concurrency = 1
        engine = engine_for(store, {Platform.FACEBOOK: conn}, cfg)
        task = asyncio.create_task(engine.run())
        await world.wait_until(lambda: conn.in_flight == 1)
        loop = asyncio.get_running_loop()
        asked = loop.time()
        engine.request_stop()
        await asyncio.wait_for(task, 5)
        assert loop.time() - asked < 1.5  # not the 3 s the request in flight would take
        assert len(world.arrivals) == 1  # the queued ones were never sent
        got = sorted(d.state for d in (await states(store)).values())
        assert got == [S.SCHEDULED, S.SCHEDULED, S.UNCONFIRMED]

    async def test_a_look_up_page_over_the_limit_waits_without_pausing_the_channel(
        self, store, world
    ):
        from herald.errors import OutcomeUnknown

        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text="unsure")])
        rule = LimitRule("page_calls", "calls", "channel", RollingWindow(1, 3600))
        conn = FakeConnector(
            Platform.FACEBOOK,
            world,
            script={"unsure": [OutcomeUnknown("timeout")]},
            page_usage={"calls": 1},
        )
        engine = engine_for(store, {Platform.FACEBOOK: conn}, rules={Platform.FACEBOOK: (rule,)})
        await drain(engine)
        (d,) = (await states(store)).values()
        # The send used the hour's only call; the look-up's second page must wait for the window.
        assert (d.state, d.check_first, d.checks) == (S.UNCONFIRMED, True, 0)
        assert d.next_attempt_at > utcnow() + timedelta(minutes=50)
        assert [kind for kind, _ in world.calls] == ["publish", "find"]
