"""The Store contract: every store (memory, SQLite, PostgreSQL) passes these same tests."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from herald.domain import (
    Attempt,
    ChannelStatus,
    ContentOverride,
    NewPost,
    Platform,
    Post,
    Transition,
    new_id,
    utcnow,
)
from herald.errors import InvalidInput, NotFound
from herald.states import DeliveryState
from herald.stores.contract import ABANDONED_ERROR
from herald.testing import channel, new_post
from herald.types import EngineInfo, Recovered

S = DeliveryState
HOUR = timedelta(hours=1)


async def claim(store, now=None, limit=100, lease=HOUR, expire_before=None, *, engine_id=None):
    now = now or utcnow()
    return await store.claim_due(
        now=now,
        limit=limit,
        lease_until=now + lease,
        expire_before=expire_before or now - timedelta(days=1),
        engine_id=engine_id,
    )


def engine(name: str, started_at) -> EngineInfo:
    return EngineInfo(new_id(f"eng_{name}"), "host-1", 4242, started_at)


def publishing(job, now):
    return Transition(
        job.delivery.id,
        S.PUBLISHING,
        claim_token=job.claim_token,
        lease_until=now + HOUR,
        sent=True,
        check_first=False,
        check_since=now,
    )


class StoreContract:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def test_channels_roundtrip_and_uniqueness(self, store):
        fb, ig = channel(Platform.FACEBOOK), channel(Platform.INSTAGRAM)
        await store.add_channels([fb, ig])
        assert await store.get_channel(fb.id) == fb
        assert {c.id for c in await store.list_channels()} == {fb.id, ig.id}
        with pytest.raises(InvalidInput):
            await store.add_channels([channel(Platform.FACEBOOK, external_id=fb.external_id)])
        with pytest.raises(NotFound):
            await store.get_channel("ch_missing")

    async def test_set_channel_status(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.set_channel_status(fb.id, ChannelStatus.NEEDS_REAUTH)
        assert (await store.get_channel(fb.id)).status is ChannelStatus.NEEDS_REAUTH
        await store.set_channel_status(fb.id, ChannelStatus.ACTIVE, credentials_ref="env:NEW")
        got = await store.get_channel(fb.id)
        assert got.status is ChannelStatus.ACTIVE
        assert got.credentials_ref == "env:NEW"
        with pytest.raises(NotFound):
            await store.set_channel_status("ch_missing", ChannelStatus.ACTIVE)

    async def test_add_posts_creates_scheduled_deliveries(self, store):
        fb, li = channel(Platform.FACEBOOK), channel(Platform.LINKEDIN)
        await store.add_channels([fb, li])
        due = utcnow() + HOUR
        new = new_post([fb, li], due_at=due)
        deliveries = await store.add_posts([new])
        assert [d.id for d in deliveries] == [t[0] for t in new.targets]
        for d in deliveries:
            assert d.state is S.SCHEDULED
            assert d.due_at == due
            assert d.next_attempt_at == due
            assert d.attempts == 0
        assert {d.platform for d in deliveries} == {Platform.FACEBOOK, Platform.LINKEDIN}
        assert (await store.get_post(new.post.id)).content == new.post.content

    async def test_add_posts_is_atomic_on_unknown_channel(self, store):
        fb = channel()
        await store.add_channels([fb])
        good = new_post([fb])
        bad = NewPost.at(
            Post(new_id("post"), good.post.content), [(new_id("dlv"), "ch_nope")], utcnow()
        )
        with pytest.raises(NotFound):
            await store.add_posts([good, bad])
        assert await store.count_by_state() == {}
        with pytest.raises(NotFound):
            await store.get_post(good.post.id)

    async def test_claim_takes_only_due_deliveries_in_due_order(self, store):
        fb = channel()
        await store.add_channels([fb])
        now = utcnow()
        later = new_post([fb], due_at=now + HOUR)
        first = new_post([fb], due_at=now - timedelta(seconds=30))
        second = new_post([fb], due_at=now - timedelta(seconds=10))
        await store.add_posts([later, second, first])
        batch = await claim(store, now=now)
        assert [j.delivery.post_id for j in batch.jobs] == [first.post.id, second.post.id]
        assert all(j.delivery.state is S.CLAIMED for j in batch.jobs)
        assert all(j.channel == fb for j in batch.jobs)
        assert len({j.claim_token for j in batch.jobs}) == 1
        assert (await claim(store, now=now)).jobs == []
        assert await store.next_due_at() == later.due_at

    async def test_claim_respects_limit(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(7)])
        assert len((await claim(store, limit=5)).jobs) == 5
        assert len((await claim(store, limit=5)).jobs) == 2

    async def test_claim_applies_platform_overrides(self, store):
        fb, li = channel(Platform.FACEBOOK), channel(Platform.LINKEDIN)
        await store.add_channels([fb, li])
        base = new_post([fb, li])
        post = Post(
            base.post.id,
            base.post.content,
            overrides={Platform.LINKEDIN: ContentOverride(text="For my network")},
        )
        await store.add_posts([NewPost.at(post, base.targets, base.due_at)])
        jobs = {j.channel.platform: j for j in (await claim(store)).jobs}
        assert jobs[Platform.FACEBOOK].content.text == base.post.content.text
        assert jobs[Platform.LINKEDIN].content.text == "For my network"
        assert jobs[Platform.LINKEDIN].content.title == base.post.content.title

    async def test_claim_skips_channels_that_are_not_active(self, store):
        fb, other = channel(), channel()
        await store.add_channels([fb, other])
        await store.add_posts([new_post([fb]), new_post([other])])
        await store.set_channel_status(fb.id, ChannelStatus.NEEDS_REAUTH)
        jobs = (await claim(store)).jobs
        assert [j.channel.id for j in jobs] == [other.id]
        assert await store.next_due_at() is None
        await store.set_channel_status(fb.id, ChannelStatus.ACTIVE)
        assert [j.channel.id for j in (await claim(store)).jobs] == [fb.id]

    async def test_claim_expires_late_deliveries_instead_of_claiming_them(self, store):
        fb = channel()
        await store.add_channels([fb])
        now = utcnow()
        stale = new_post([fb], due_at=now - timedelta(hours=30))
        fresh = new_post([fb], due_at=now - timedelta(hours=1))
        await store.add_posts([stale, fresh])
        batch = await claim(store, now=now, expire_before=now - timedelta(hours=24))
        assert [j.delivery.post_id for j in batch.jobs] == [fresh.post.id]
        assert [d.post_id for d in batch.expired] == [stale.post.id]
        got = await store.get_delivery(stale.targets[0][0])
        assert got.state is S.EXPIRED
        assert got.next_attempt_at is None

    async def test_concurrent_claimers_never_share_nor_skip(self, store):
        fbs = [channel() for _ in range(4)]
        await store.add_channels(fbs)
        posts = [new_post([fbs[i % 4]]) for i in range(300)]
        await store.add_posts(posts)
        batches = await asyncio.gather(*(claim(store, limit=37) for _ in range(12)))
        claimed = [j.delivery.id for b in batches for j in b.jobs]
        assert len(claimed) == len(set(claimed)) == 300

    async def test_apply_guards_on_state_and_claim_token(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb])])
        (job,) = (await claim(store)).jobs
        now = utcnow()
        stale = Transition(job.delivery.id, S.PUBLISHING, claim_token="not-mine")
        wrong_state = Transition(job.delivery.id, S.PUBLISHED, claim_token=job.claim_token)
        missing = Transition("dlv_missing", S.PUBLISHING)
        assert await store.apply([stale, wrong_state, missing]) == [False, True, False]
        # wrong_state was allowed: claimed -> published (a look-up found the post).
        assert (await store.get_delivery(job.delivery.id)).state is S.PUBLISHED
        assert await store.apply([publishing(job, now)]) == [False]

    async def test_publish_cycle_records_counts_and_attempts(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb])])
        (job,) = (await claim(store)).jobs
        now = utcnow()
        assert await store.apply([publishing(job, now)]) == [True]
        sending = await store.get_delivery(job.delivery.id)
        assert (sending.state, sending.attempts, sending.check_since) == (S.PUBLISHING, 1, now)
        retry_at = now + timedelta(seconds=5)
        attempt = Attempt(job.delivery.id, 1, now, now, "transient", "503")
        retry = Transition(
            job.delivery.id,
            S.RETRY_WAIT,
            claim_token=job.claim_token,
            next_attempt_at=retry_at,
            retry_spent=True,
            error="503",
            attempt=attempt,
        )
        assert await store.apply([retry]) == [True]
        waiting = await store.get_delivery(job.delivery.id)
        assert waiting.state is S.RETRY_WAIT
        assert (waiting.retries, waiting.next_attempt_at, waiting.last_error) == (
            1,
            retry_at,
            "503",
        )
        assert waiting.check_since is None
        assert await store.list_attempts(job.delivery.id) == [attempt]
        assert await store.next_due_at() == retry_at

        (again,) = (await claim(store, now=retry_at)).jobs
        assert again.claim_token != job.claim_token
        await store.apply([publishing(again, retry_at)])
        done = Transition(
            job.delivery.id,
            S.PUBLISHED,
            claim_token=again.claim_token,
            external_id="123_456",
            published_at=retry_at,
            attempt=Attempt(job.delivery.id, 2, retry_at, retry_at, "published"),
        )
        assert await store.apply([done]) == [True]
        final = await store.get_delivery(job.delivery.id)
        assert (final.state, final.attempts, final.external_id) == (S.PUBLISHED, 2, "123_456")
        assert final.published_at == retry_at
        assert final.next_attempt_at is None
        assert len(await store.list_attempts(job.delivery.id)) == 2
        # The old claim can no longer write anything.
        late = Transition(job.delivery.id, S.FAILED, claim_token=job.claim_token)
        assert await store.apply([late]) == [False]

    async def test_attempt_is_recorded_only_when_the_transition_applies(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb])])
        (job,) = (await claim(store)).jobs
        now = utcnow()
        ignored = Transition(
            job.delivery.id,
            S.FAILED,
            claim_token="stale",
            attempt=Attempt(job.delivery.id, 1, now, now, "rejected"),
        )
        assert await store.apply([ignored]) == [False]
        assert await store.list_attempts(job.delivery.id) == []

    async def test_unknown_outcome_keeps_check_window_until_resolved(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb])])
        (job,) = (await claim(store)).jobs
        now = utcnow()
        await store.apply([publishing(job, now)])
        unsure = Transition(
            job.delivery.id,
            S.UNCONFIRMED,
            claim_token=job.claim_token,
            next_attempt_at=now,
            check_first=True,
            error="timeout",
        )
        assert await store.apply([unsure]) == [True]
        got = await store.get_delivery(job.delivery.id)
        assert (got.state, got.check_first, got.check_since) == (S.UNCONFIRMED, True, now)
        # Even long past its expiry, a delivery that owes a check is claimed, not expired.
        later = now + timedelta(days=3)
        batch = await claim(store, now=later, expire_before=later - timedelta(days=1))
        assert batch.expired == []
        (check,) = batch.jobs
        assert check.delivery.check_first
        failed_check = Transition(
            job.delivery.id,
            S.UNCONFIRMED,
            claim_token=check.claim_token,
            next_attempt_at=later,
            check_first=True,
            check_failed=True,
        )
        await store.apply([failed_check])
        assert (await store.get_delivery(job.delivery.id)).checks == 1
        (check2,) = (await claim(store, now=later, expire_before=later)).jobs
        found = Transition(
            job.delivery.id,
            S.PUBLISHED,
            claim_token=check2.claim_token,
            external_id="found-1",
            reconciled=True,
            check_first=False,
        )
        assert await store.apply([found]) == [True]
        got = await store.get_delivery(job.delivery.id)
        assert (got.state, got.reconciled, got.check_first, got.check_since, got.checks) == (
            S.PUBLISHED,
            True,
            False,
            None,
            0,
        )

    async def test_user_retry_resets_the_retry_budget(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb])])
        (job,) = (await claim(store)).jobs
        now = utcnow()
        await store.apply([publishing(job, now)])
        await store.apply(
            [Transition(job.delivery.id, S.FAILED, claim_token=job.claim_token, retry_spent=True)]
        )
        retry = Transition(job.delivery.id, S.SCHEDULED, next_attempt_at=now, reset_retries=True)
        assert await store.apply([retry]) == [True]
        got = await store.get_delivery(job.delivery.id)
        assert (got.state, got.retries, got.attempts) == (S.SCHEDULED, 0, 1)

    async def test_reschedule_moves_due_time(self, store):
        fb = channel()
        await store.add_channels([fb])
        new = new_post([fb], due_at=utcnow() + HOUR)
        (delivery,) = await store.add_posts([new])
        moved = delivery.due_at + HOUR
        t = Transition(delivery.id, S.SCHEDULED, due_at=moved, next_attempt_at=moved)
        assert await store.apply([t]) == [True]
        got = await store.get_delivery(delivery.id)
        assert (got.due_at, got.next_attempt_at) == (moved, moved)

    async def test_leases_extend_and_recover(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(3)])
        now = utcnow()
        jobs = (await claim(store, now=now, lease=timedelta(seconds=10))).jobs
        sent, unsent, checked = jobs
        await store.apply([publishing(sent, now)])
        assert await store.extend_leases([jobs[0].claim_token], now + timedelta(seconds=20)) == 3
        assert await store.recover_expired_leases(now + timedelta(seconds=15)) == 0
        assert await store.recover_expired_leases(now + timedelta(seconds=25)) == 3
        after = {j.delivery.id: await store.get_delivery(j.delivery.id) for j in jobs}
        # May have been sent: never requeued blindly, looked up first.
        assert after[sent.delivery.id].state is S.UNCONFIRMED
        assert after[sent.delivery.id].check_first
        # Never sent: simply claimable again.
        assert after[unsent.delivery.id].state is S.SCHEDULED
        assert not after[unsent.delivery.id].check_first
        assert after[checked.delivery.id].next_attempt_at is not None
        assert len((await claim(store, now=now + timedelta(seconds=30))).jobs) == 3

    async def test_a_channel_keeps_its_region_into_the_jobs_it_is_claimed_in(self, store):
        eu, anywhere = channel(region="eu-west-1"), channel(Platform.LINKEDIN)
        await store.add_channels([eu, anywhere])
        assert (await store.get_channel(eu.id)).region == "eu-west-1"
        assert (await store.get_channel(anywhere.id)).region is None
        await store.add_posts([new_post([eu, anywhere])])
        jobs = (await claim(store)).jobs
        assert {j.channel.id: j.channel.region for j in jobs} == {
            eu.id: "eu-west-1",
            anywhere.id: None,
        }

    async def test_a_worker_adopts_a_claim_once_and_the_old_token_writes_nothing(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(4)])
        now = utcnow()
        dispatcher, worker, other = (engine(n, now) for n in ("dispatcher", "worker", "other"))
        for e in (dispatcher, worker, other):
            await store.beat(e, now)
        short = timedelta(seconds=30)
        waiting, sent, again, gone = (
            await claim(store, now=now, lease=short, engine_id=dispatcher.id)
        ).jobs
        await store.apply([publishing(sent, now)])  # no longer waiting for a worker
        offered = [(j.delivery.id, j.claim_token) for j in (waiting, sent, again)]
        offered.append((gone.delivery.id, "not-its-token"))
        lease = now + HOUR
        got = await store.adopt(offered, engine_id=worker.id, lease_until=lease)
        assert got.delivery_ids == {waiting.delivery.id, again.delivery.id}
        assert got.claim_token not in {waiting.claim_token, ""}
        # A second copy of the same message, taken by another worker, gets nothing.
        twice = await store.adopt(offered, engine_id=other.id, lease_until=lease)
        assert twice.delivery_ids == frozenset()
        assert (await store.adopt([], engine_id=other.id, lease_until=lease)).delivery_ids == set()
        # The dispatcher's token writes nothing any more; the worker's does.
        stale = Transition(waiting.delivery.id, S.PUBLISHING, claim_token=waiting.claim_token)
        assert await store.apply([stale]) == [False]
        mine = Transition(again.delivery.id, S.PUBLISHING, claim_token=got.claim_token)
        assert await store.apply([mine]) == [True]
        # The adopted leases outlive the dispatcher's: only the claim never adopted lapses.
        assert await store.recover_expired_leases(now + short + timedelta(seconds=1)) == 1
        assert (await store.get_delivery(gone.delivery.id)).state is S.SCHEDULED
        assert (await store.get_delivery(waiting.delivery.id)).state is S.CLAIMED
        assert await store.extend_leases([got.claim_token], lease + HOUR) == 2
        # Adopted claims are the worker's: they come back when it dies, not the dispatcher
        # (which still holds the one it was sending itself).
        assert await store.deregister_engine(dispatcher.id, now) == Recovered(
            engines=(dispatcher.id,), deliveries=1
        )
        released = await store.deregister_engine(worker.id, now)
        assert released == Recovered(engines=(worker.id,), deliveries=2)

    async def test_listing_and_counts(self, store):
        fb = channel()
        await store.add_channels([fb])
        deliveries = await store.add_posts([new_post([fb]) for _ in range(5)])
        ids = sorted(d.id for d in deliveries)
        page1 = await store.list_deliveries(limit=3)
        page2 = await store.list_deliveries(limit=3, after_id=page1[-1].id)
        assert [d.id for d in page1 + page2] == ids
        await claim(store, limit=2)
        assert await store.count_by_state() == {S.SCHEDULED: 3, S.CLAIMED: 2}
        assert len(await store.list_deliveries(state=S.CLAIMED)) == 2

    async def test_missing_objects_raise_not_found(self, store):
        for call in (store.get_delivery("dlv_x"), store.get_post("post_x")):
            with pytest.raises(NotFound):
                await call

    async def test_an_unclaimed_only_change_leaves_claimed_deliveries_alone(self, store):
        fb = channel()
        await store.add_channels([fb])
        now = utcnow()
        claimed, free = await store.add_posts([new_post([fb]), new_post([fb], due_at=now + HOUR)])
        (job,) = (await claim(store, now=now)).jobs
        assert job.delivery.id == claimed.id
        later = now + 2 * HOUR
        moves = [
            Transition(d.id, S.SCHEDULED, due_at=later, next_attempt_at=later, unclaimed=True)
            for d in (claimed, free)
        ]
        assert await store.apply(moves) == [False, True]
        assert (await store.get_delivery(claimed.id)).state is S.CLAIMED
        assert (await store.get_delivery(free.id)).due_at == later

    async def test_sent_since_reports_attempts_and_unresolved_sends_oldest_first(self, store):
        fb, li = channel(Platform.FACEBOOK), channel(Platform.LINKEDIN)
        await store.add_channels([fb, li])
        base = new_post([fb, li])
        override = {Platform.LINKEDIN: ContentOverride(text="For my network")}
        shared = Post(base.post.id, base.post.content, overrides=override)
        old, open_ = new_post([fb], text="old"), new_post([fb], text="open")
        await store.add_posts([NewPost.at(shared, base.targets, base.due_at), old, open_])
        jobs = {(j.delivery.post_id, j.channel.id): j for j in (await claim(store)).jobs}
        on_li, on_fb = jobs[(shared.id, li.id)], jobs[(shared.id, fb.id)]
        gone, flying = jobs[(old.post.id, fb.id)], jobs[(open_.post.id, fb.id)]
        since = utcnow() - HOUR
        t = [since + timedelta(minutes=m) for m in range(6)]

        def outcome(job, target, at, label, **kw):
            attempt = Attempt(job.delivery.id, 1, at, at, label)
            return Transition(
                job.delivery.id, target, claim_token=job.claim_token, attempt=attempt, **kw
            )

        await store.apply([publishing(gone, since - timedelta(minutes=2))])
        await store.apply([outcome(gone, S.PUBLISHED, since - timedelta(minutes=1), "published")])
        await store.apply(
            [publishing(on_li, t[1]), publishing(on_fb, t[2]), publishing(flying, t[4])]
        )
        await store.apply([outcome(on_li, S.PUBLISHED, t[1], "published")])
        unsure = {"check_first": True, "next_attempt_at": t[0]}
        await store.apply([outcome(on_fb, S.UNCONFIRMED, t[3], "unknown", **unsure)])
        (check,) = (await claim(store)).jobs
        await store.apply([outcome(check, S.UNCONFIRMED, t[5], "check_failed", **unsure)])

        got = await store.sent_since(since)
        assert [(r.delivery_id, r.number, r.started_at, r.outcome) for r in got] == [
            (on_li.delivery.id, 1, t[1], "published"),
            (on_fb.delivery.id, 1, t[2], None),  # sent at t2, owes a look-up: unresolved
            (on_fb.delivery.id, 1, t[3], "unknown"),
            (flying.delivery.id, 1, t[4], None),  # still publishing
            (on_fb.delivery.id, 1, t[5], "check_failed"),
        ]
        assert [(r.platform, r.channel_external_id) for r in got[:2]] == [
            (Platform.LINKEDIN, li.external_id),
            (Platform.FACEBOOK, fb.external_id),
        ]
        # What the connector sent: the post's content with the platform's override.
        assert got[0].content == shared.content_for(Platform.LINKEDIN)
        assert got[0].content.text == "For my network"
        assert got[1].content == shared.content
        assert got[3].content.text == "open"
        assert await store.sent_since(t[5] + timedelta(seconds=1)) == []

    async def test_recovery_records_the_send_a_dead_engine_left_on_the_wire(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(2)])
        now = utcnow()
        sending, unsent = (await claim(store, now=now, lease=timedelta(seconds=10))).jobs
        sent_at = now + timedelta(seconds=1)
        await store.apply([publishing(sending, sent_at)])
        later = now + 2 * HOUR  # both leases ran out
        assert await store.recover_expired_leases(later) == 2
        d = sending.delivery.id
        # The platform may have counted the send: it is kept, with its number and start.
        abandoned = Attempt(d, 1, sent_at, later, "abandoned", ABANDONED_ERROR)
        assert await store.list_attempts(d) == [abandoned]
        assert await store.list_attempts(unsent.delivery.id) == []  # nothing was sent

        # Its look-up (two further listing pages) finds the post and settles the delivery.
        check = {j.delivery.id: j for j in (await claim(store, now=later)).jobs}[d]
        found = Attempt(d, 1, later, later, "found", page_usage={"calls": 2})
        settled = Transition(
            d,
            S.PUBLISHED,
            claim_token=check.claim_token,
            external_id="p1",
            reconciled=True,
            check_first=False,
            attempt=found,
        )
        assert await store.apply([settled]) == [True]
        assert await store.list_attempts(d) == [abandoned, found]
        got = await store.sent_since(now)
        assert [(r.delivery_id, r.number, r.started_at, r.outcome, r.page_usage) for r in got] == [
            (d, 1, sent_at, "abandoned", {}),
            (d, 1, later, "found", {"calls": 2}),
        ]

    async def test_a_recovery_of_every_claim_records_every_send_on_the_wire(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb])])
        now = utcnow()
        (job,) = (await claim(store, now=now)).jobs
        await store.apply([publishing(job, now)])
        assert await store.recover_expired_leases(now, every=True) == 1
        assert [a.outcome for a in await store.list_attempts(job.delivery.id)] == ["abandoned"]
        assert await store.recover_expired_leases(now, every=True) == 0  # recorded once
        assert len(await store.list_attempts(job.delivery.id)) == 1

    async def test_engines_register_with_their_first_beat_and_are_listed(self, store):
        t0 = utcnow().replace(microsecond=0)
        a, b = engine("a", t0), engine("b", t0 + timedelta(seconds=1))
        assert await store.beat(a, t0) is False  # not registered yet: now it is
        assert await store.beat(b, t0 + timedelta(seconds=1)) is False
        assert await store.beat(a, t0 + timedelta(seconds=5)) is True
        listed = await store.list_engines()
        assert [(e.id, e.host, e.pid, e.started_at) for e in listed] == [
            (a.id, "host-1", 4242, t0),
            (b.id, "host-1", 4242, t0 + timedelta(seconds=1)),
        ]
        assert [e.beat_at for e in listed] == [t0 + timedelta(seconds=5), t0 + timedelta(seconds=1)]

    async def test_claims_of_an_engine_that_stopped_beating_come_back_at_once(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(4)])
        now = utcnow()
        dead, alive = engine("dead", now - HOUR), engine("alive", now - HOUR)
        await store.beat(dead, now - timedelta(seconds=40))
        await store.beat(alive, now - timedelta(seconds=2))
        # Long leases: only the heartbeat can tell that the first engine is gone.
        sent, unsent, checked = (await claim(store, now=now, limit=3, engine_id=dead.id)).jobs
        (kept,) = (await claim(store, now=now, limit=1, engine_id=alive.id)).jobs
        await store.apply([publishing(sent, now)])
        assert await store.recover_expired_leases(now) == 0

        got = await store.recover_dead_engines(now, dead_before=now - timedelta(seconds=15))
        assert got == Recovered(engines=(dead.id,), deliveries=3)
        after = {j.delivery.id: await store.get_delivery(j.delivery.id) for j in (sent, unsent)}
        # May have been sent: looked up before any resend. Never sent: claimable again.
        assert (after[sent.delivery.id].state, after[sent.delivery.id].check_first) == (
            S.UNCONFIRMED,
            True,
        )
        assert after[unsent.delivery.id].state is S.SCHEDULED
        assert (await store.get_delivery(kept.delivery.id)).state is S.CLAIMED
        assert [e.id for e in await store.list_engines()] == [alive.id]
        # The dead engine's tokens write nothing any more; the rest is claimed anew.
        late = Transition(checked.delivery.id, S.PUBLISHING, claim_token=checked.claim_token)
        assert await store.apply([late]) == [False]
        assert len((await claim(store, now=now, engine_id=alive.id)).jobs) == 3
        # Nothing more to do; and a dead engine that beats again is registered again.
        quiet = now - timedelta(seconds=15)
        assert await store.recover_dead_engines(now, dead_before=quiet) == Recovered()
        assert await store.beat(dead, now) is False

    async def test_an_engine_that_leaves_releases_what_it_still_holds(self, store):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(2)])
        now = utcnow()
        leaving, other = engine("leaving", now), engine("other", now)
        await store.beat(leaving, now)
        await store.beat(other, now)
        (held,) = (await claim(store, now=now, limit=1, engine_id=leaving.id)).jobs
        (kept,) = (await claim(store, now=now, limit=1, engine_id=other.id)).jobs
        got = await store.deregister_engine(leaving.id, now)
        assert got == Recovered(engines=(leaving.id,), deliveries=1)
        assert (await store.get_delivery(held.delivery.id)).state is S.SCHEDULED
        assert (await store.get_delivery(kept.delivery.id)).state is S.CLAIMED
        assert [e.id for e in await store.list_engines()] == [other.id]
        assert await store.deregister_engine(leaving.id, now) == Recovered()

    async def test_a_dead_engine_s_send_on_the_wire_is_recorded_when_its_claims_come_back(
        self, store
    ):
        fb = channel()
        await store.add_channels([fb])
        await store.add_posts([new_post([fb])])
        now = utcnow()
        dead = engine("dead", now - HOUR)
        await store.beat(dead, now - timedelta(seconds=40))
        (job,) = (await claim(store, now=now, engine_id=dead.id)).jobs
        await store.apply([publishing(job, now)])
        got = await store.recover_dead_engines(now, dead_before=now - timedelta(seconds=15))
        assert got.deliveries == 1
        # As after a lapsed lease: the platform may have counted it, whatever a look-up finds.
        assert [a.outcome for a in await store.list_attempts(job.delivery.id)] == ["abandoned"]
