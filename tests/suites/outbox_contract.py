"""The outbox's fairness, failure record and kept events, on every store: claims capped per
webhook and per workspace and taking workspaces in turn, failing webhooks held back and
disabled (their events kept), finished events listed and replayed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from herald.constants import PLATFORM_VERSION_RETIRING, WEBHOOK_DISABLED
from herald.domain import (
    ChannelStatus,
    Platform,
    Webhook,
    WebhookEventState,
    WebhookHealth,
    Workspace,
    new_id,
    utcnow,
)
from herald.errors import NotFound
from herald.testing import channel

E = WebhookEventState
HOUR = timedelta(hours=1)
REAUTH = "channel.needs_reauth"


def version_event(platform: Platform, version: str) -> dict[str, object]:
    return {
        "event": PLATFORM_VERSION_RETIRING,
        "platform": platform.value,
        "version": version,
        "days_left": 3,
    }


class Tenant:
    """A workspace with a channel whose status changes record ``channel.needs_reauth``."""

    def __init__(self, store, workspace: Workspace) -> None:
        self.store = store
        self.workspace = workspace
        self.channel = channel(workspace_id=workspace.id)

    @classmethod
    async def made(cls, store, name: str) -> Tenant:
        ws = Workspace(new_id("ws"), name)
        await store.add_workspace(ws)
        tenant = cls(store, ws)
        await store.add_channels([tenant.channel])
        return tenant

    async def webhook(self, events: tuple[str, ...] = (REAUTH,)) -> Webhook:
        hook = Webhook(new_id("wh"), self.workspace.id, "https://hooks.example/h", events)
        await self.store.add_webhook(hook, b"s")
        return hook

    async def record(self, count: int = 1) -> None:
        """``count`` events for each of the workspace's subscribed webhooks."""
        for _ in range(count):
            await self.store.set_channel_status(
                self.channel.id, ChannelStatus.NEEDS_REAUTH, event=REAUTH
            )


def later(seconds: float = 1) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


async def claim(store, now: datetime, limit: int = 100, **caps: int):
    return await store.claim_webhook_events(now=now, limit=limit, lease_until=now + HOUR, **caps)


async def fail(store, event_id: str, at: datetime, retry_at: datetime | None = None):
    return await store.settle_webhook_event(
        event_id, sent=False, next_attempt_at=retry_at, error="HTTP 503", at=at
    )


async def webhook_of(store, hook: Webhook) -> Webhook:
    [found] = [w for w in await store.list_webhooks(hook.workspace_id) if w.id == hook.id]
    return found


class OutboxContract:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def test_claims_cap_each_webhook_and_each_workspace(self, store):
        a = await Tenant.made(store, "A")
        one, two = await a.webhook(), await a.webhook()
        await a.record(5)
        now = later()
        first = await claim(store, now, per_webhook=2, per_workspace=3)
        assert len(first) == 3
        assert max(sum(e.webhook_id == h.id for e in first) for h in (one, two)) == 2
        # Those still in flight count against the caps at the next claim, by any sender.
        second = await claim(store, now, per_webhook=2, per_workspace=3)
        assert second == []
        await store.settle_webhook_event(
            first[0].id, sent=True, next_attempt_at=None, error=None, at=now
        )
        (third,) = await claim(store, now, per_webhook=2, per_workspace=3)
        assert third.id not in {e.id for e in first}

    async def test_a_batch_takes_workspaces_in_turn(self, store):
        a, b, c = [await Tenant.made(store, n) for n in ("A", "B", "C")]
        for tenant in (a, b, c):
            await tenant.webhook()
        await a.record(20)  # a flood, recorded first: the oldest due events are all A's
        await b.record(2)
        await c.record(1)
        batch = await claim(store, later(), limit=4, per_webhook=10, per_workspace=10)
        spaces = sorted(e.workspace_id for e in batch)
        assert spaces == sorted([a.workspace.id, a.workspace.id, b.workspace.id, c.workspace.id])

    async def test_each_workspace_gets_its_oldest_events_first(self, store):
        a = await Tenant.made(store, "A")
        hook = await a.webhook()
        await a.record(3)
        records = await store.list_webhook_events(hook.id)
        oldest = min(records, key=lambda r: (r.next_attempt_at, r.event.id))
        (first,) = await claim(store, later(), limit=1)
        assert first.id == oldest.event.id

    async def test_a_failing_webhook_is_probed_one_event_at_a_time_and_held(self, store):
        a = await Tenant.made(store, "A")
        hook = await a.webhook()
        await a.record(4)
        t0 = later()
        batch = await claim(store, t0, per_webhook=4)
        assert len(batch) == 4
        health = await fail(store, batch[0].id, t0, retry_at=t0 + timedelta(seconds=5))
        assert health == WebhookHealth(1, t0)
        health = await fail(store, batch[1].id, t0 + timedelta(seconds=1))
        assert health == WebhookHealth(2, t0)  # failing since the first failure
        assert (await webhook_of(store, hook)).failing_since == t0
        # Failing, with two still in flight: no room for a third.
        assert await claim(store, t0 + timedelta(seconds=10), per_webhook=4) == []
        held = t0 + timedelta(seconds=30)
        await store.hold_webhook(hook.id, held)
        await store.hold_webhook(hook.id, t0 + timedelta(seconds=20))  # never shortened
        for e in batch[2:]:
            await fail(store, e.id, t0, retry_at=t0)
        assert await store.next_webhook_event_at() == held
        assert await claim(store, held - timedelta(seconds=1), per_webhook=4) == []
        (probe,) = await claim(store, held, per_webhook=4)  # one at a time while failing
        health = await store.settle_webhook_event(
            probe.id, sent=True, next_attempt_at=None, error=None, at=held
        )
        assert health == WebhookHealth(0, None)
        assert (await webhook_of(store, hook)).failing_since is None
        assert len(await claim(store, held, per_webhook=4)) == 2  # healthy: its full cap

    async def test_failing_webhooks_share_the_probes_whatever_their_workspaces(self, store):
        tenants = [await Tenant.made(store, n) for n in ("A", "B", "C", "D")]
        hooks = [await tenant.webhook() for tenant in tenants]
        for tenant in tenants:
            await tenant.record(2)
        t0 = later()
        for event in await claim(store, t0):
            await fail(store, event.id, t0, retry_at=t0)  # every webhook is failing now

        def due(record):
            return (record.next_attempt_at, record.event.id)

        # One probe per failing webhook (its most overdue event), the most overdue of those.
        firsts = [min(await store.list_webhook_events(h.id), key=due) for h in hooks]
        overdue = sorted(firsts, key=due)
        t1 = t0 + timedelta(seconds=1)
        probes = await claim(store, t1, probes=2)
        assert sorted(e.id for e in probes) == sorted(r.event.id for r in overdue[:2])
        assert await claim(store, t1, probes=2) == []  # both probes still in flight
        healthy = await Tenant.made(store, "E")
        await healthy.webhook()
        await healthy.record(3)
        assert len(await claim(store, later(2), probes=2)) == 3  # not failing: no probe

    async def test_a_hold_needs_a_failing_webhook(self, store):
        a = await Tenant.made(store, "A")
        hook = await a.webhook()
        await a.record()
        await store.hold_webhook(hook.id, later(3600))  # not failing: nothing held
        assert len(await claim(store, later())) == 1

    async def test_settling_an_event_no_longer_sending_changes_nothing(self, store):
        a = await Tenant.made(store, "A")
        hook = await a.webhook()
        await a.record()
        now = later()
        (event,) = await claim(store, now)
        await store.settle_webhook_event(
            event.id, sent=True, next_attempt_at=None, error=None, at=now
        )
        assert await fail(store, event.id, now) is None
        assert (await webhook_of(store, hook)).failing_since is None

    async def test_a_disabled_webhook_keeps_its_events_until_enabled(self, store):
        a, b = await Tenant.made(store, "A"), await Tenant.made(store, "B")
        hook = await a.webhook()
        watcher = await a.webhook(events=(WEBHOOK_DISABLED,))
        deaf = await a.webhook(events=(REAUTH,))  # same workspace, not subscribed
        foreign = await b.webhook(events=(WEBHOOK_DISABLED,))
        await a.record()
        t0 = later()
        events = await claim(store, t0)
        mine = next(e for e in events if e.webhook_id == hook.id)
        for e in events:
            if e.id != mine.id:
                await store.settle_webhook_event(
                    e.id, sent=True, next_attempt_at=None, error=None, at=t0
                )
        assert not await store.disable_webhook(hook.id, reason="x", at=t0)  # not failing
        await fail(store, mine.id, t0, retry_at=t0)
        assert await store.disable_webhook(hook.id, reason="it kept failing", at=t0)
        assert not await store.disable_webhook(hook.id, reason="again", at=t0)
        disabled = await webhook_of(store, hook)
        assert (disabled.disabled_at, disabled.disabled_reason) == (t0, "it kept failing")
        assert not disabled.enabled
        # The notice: one event for the workspace's other webhook subscribed to it.
        t1 = t0 + timedelta(seconds=1)
        (notice,) = await claim(store, t1)
        assert (notice.webhook_id, notice.event) == (watcher.id, WEBHOOK_DISABLED)
        assert notice.payload["webhook_id"] == hook.id
        assert notice.payload["reason"] == "it kept failing"
        assert notice.payload["url"] == hook.url
        assert foreign.id != notice.webhook_id != deaf.id
        # Its events, old and new, are kept pending: not claimed, not due.
        await a.record()  # one more for it, and one for deaf
        (for_deaf,) = await claim(store, t1)
        assert for_deaf.webhook_id == deaf.id
        for e in (notice, for_deaf):
            await store.settle_webhook_event(
                e.id, sent=True, next_attempt_at=None, error=None, at=t1
            )
        assert await store.next_webhook_event_at() is None
        kept = await store.list_webhook_events(hook.id, state=E.PENDING)
        assert len(kept) == 2
        await store.enable_webhook(hook.id)
        enabled = await webhook_of(store, hook)
        assert enabled.enabled
        assert enabled.disabled_reason is None
        assert enabled.failing_since is None
        assert {e.webhook_id for e in await claim(store, t1)} == {hook.id}
        with pytest.raises(NotFound):
            await store.enable_webhook("wh_nope")

    async def test_a_platform_event_reaches_the_workspaces_on_that_platform(self, store):
        # Each tenant has a Facebook channel; only "both" has a LinkedIn one too.
        fb_only, deaf, both = [await Tenant.made(store, n) for n in ("A", "B", "C")]
        await store.add_channels([channel(Platform.LINKEDIN, workspace_id=both.workspace.id)])
        fb_watcher = await fb_only.webhook(events=(PLATFORM_VERSION_RETIRING,))
        await fb_only.webhook()  # the same workspace, not subscribed
        await deaf.webhook()
        li_watcher = await both.webhook(events=(PLATFORM_VERSION_RETIRING,))
        payload = version_event(Platform.LINKEDIN, "202606")
        t0 = later()
        event = PLATFORM_VERSION_RETIRING
        assert await store.record_platform_event(Platform.LINKEDIN, event, payload, t0) == 1
        (recorded,) = await claim(store, t0)
        assert (recorded.webhook_id, recorded.event) == (li_watcher.id, event)
        assert recorded.payload == payload
        fb = version_event(Platform.FACEBOOK, "v23.0")
        assert await store.record_platform_event(Platform.FACEBOOK, event, fb, t0) == 2
        assert {e.webhook_id for e in await claim(store, t0)} == {fb_watcher.id, li_watcher.id}
        yt = version_event(Platform.YOUTUBE, "v3")
        assert await store.record_platform_event(Platform.YOUTUBE, event, yt, t0) == 0

    async def test_a_platform_event_is_recorded_once_a_day_per_webhook_and_version(self, store):
        # Every engine process started in a day warns on its own: the webhook hears of a
        # version once that day, of another version at once, and of the same one next day.
        a = await Tenant.made(store, "A")
        await a.webhook(events=(PLATFORM_VERSION_RETIRING,))
        event, t0 = PLATFORM_VERSION_RETIRING, later()
        day = t0.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(hours=1)
        v23, v24 = (
            version_event(Platform.FACEBOOK, "v23.0"),
            version_event(Platform.FACEBOOK, "v24.0"),
        )
        assert await store.record_platform_event(Platform.FACEBOOK, event, v23, day) == 1
        later_that_day = day + timedelta(hours=20)
        assert await store.record_platform_event(Platform.FACEBOOK, event, v23, later_that_day) == 0
        assert await store.record_platform_event(Platform.FACEBOOK, event, v24, later_that_day) == 1
        next_day = day + timedelta(days=1)
        assert await store.record_platform_event(Platform.FACEBOOK, event, v23, next_day) == 1

    async def test_a_platform_event_skips_workspaces_whose_channel_there_was_deleted(self, store):
        # The workspace's only Facebook channel is deleted: Herald no longer speaks to
        # Facebook for it, so a Facebook version's retirement is none of its business.
        gone = await Tenant.made(store, "A")
        await gone.webhook(events=(PLATFORM_VERSION_RETIRING,))
        await store.delete_channel(gone.channel.id, utcnow())
        payload = version_event(Platform.FACEBOOK, "v23.0")
        event = PLATFORM_VERSION_RETIRING
        assert await store.record_platform_event(Platform.FACEBOOK, event, payload, later()) == 0

    async def test_a_deleted_webhook_s_events_are_handed_out_to_be_settled(self, store):
        a = await Tenant.made(store, "A")
        hook = await a.webhook()
        await a.record()
        now = later()
        (event,) = await claim(store, now)
        await fail(store, event.id, now, retry_at=now)
        await store.hold_webhook(hook.id, now + HOUR)
        await store.delete_webhook(hook.id)
        assert await store.next_webhook_event_at() == now  # no hold counts for it any more
        (again,) = await claim(store, now)
        assert again.id == event.id

    async def test_events_are_kept_and_listed_by_state_with_a_cursor(self, store):
        a, b = await Tenant.made(store, "A"), await Tenant.made(store, "B")
        hook, other = await a.webhook(), await b.webhook()
        await a.record(3)
        await b.record(1)
        t0 = later()
        batch = sorted(
            (e for e in await claim(store, t0, per_webhook=10) if e.webhook_id == hook.id),
            key=lambda e: e.id,
        )
        await store.settle_webhook_event(
            batch[0].id, sent=True, next_attempt_at=None, error=None, at=t0
        )
        await fail(store, batch[1].id, t0)  # given up
        await fail(store, batch[2].id, t0, retry_at=t0 + HOUR)
        listed = await store.list_webhook_events(hook.id)
        assert [r.event.id for r in listed] == [e.id for e in batch]
        assert [r.state for r in listed] == [E.SENT, E.FAILED, E.PENDING]
        sent, failed, pending = listed
        assert (sent.finished_at, sent.last_error, sent.event.attempts) == (t0, None, 1)
        assert (failed.finished_at, failed.last_error) == (t0, "HTTP 503")
        assert failed.last_attempt_at == t0
        assert failed.next_attempt_at is None
        assert pending.finished_at is None
        assert pending.next_attempt_at == t0 + HOUR
        assert pending.event.payload["channel_id"] == a.channel.id
        assert [r.event.id for r in await store.list_webhook_events(hook.id, state=E.FAILED)] == [
            failed.event.id
        ]
        page = await store.list_webhook_events(hook.id, limit=2)
        rest = await store.list_webhook_events(hook.id, after_id=page[-1].event.id, limit=2)
        assert [r.event.id for r in page + rest] == [e.id for e in batch]
        assert await store.list_webhook_events(other.id, state=E.FAILED) == []
        assert await store.get_webhook_event(failed.event.id) == failed
        with pytest.raises(NotFound):
            await store.get_webhook_event("evt_nope")

    async def test_finished_events_are_replayed_with_fresh_attempts(self, store):
        a = await Tenant.made(store, "A")
        await a.webhook()
        await a.record(3)
        t0 = later()
        given_up, sent, waiting = await claim(store, t0, per_webhook=3)
        await fail(store, given_up.id, t0)
        await fail(store, waiting.id, t0, retry_at=t0 + HOUR)
        await store.settle_webhook_event(
            sent.id, sent=True, next_attempt_at=None, error=None, at=t0
        )  # the last: the webhook is not failing, and gets its whole cap
        t1 = t0 + timedelta(seconds=5)
        assert await store.replay_webhook_event(given_up.id, at=t1)
        assert await store.replay_webhook_event(sent.id, at=t1)
        assert not await store.replay_webhook_event(waiting.id, at=t1)  # on its way already
        replayed = await store.get_webhook_event(given_up.id)
        assert replayed.state is E.PENDING
        assert replayed.event.attempts == 0
        assert replayed.next_attempt_at == t1
        assert replayed.finished_at is None
        assert replayed.last_error == "HTTP 503"  # until the next attempt says otherwise
        again = await claim(store, t1)
        assert {e.id for e in again} == {given_up.id, sent.id}
        assert {e.attempts for e in again} == {1}
        assert not await store.replay_webhook_event(given_up.id, at=t1)  # sending
        with pytest.raises(NotFound):
            await store.replay_webhook_event("evt_nope", at=t1)

    async def test_the_webhook_backlog_counts_events_pending_or_being_sent(self, store):
        """``herald_webhook_backlog``: what is neither delivered nor given up."""
        assert await store.count_webhook_backlog() == 0
        a = await Tenant.made(store, "A")
        await a.webhook()
        await a.record(4)
        assert await store.count_webhook_backlog() == 4
        now = later()
        sent, given_up, retried, _ = sorted(await claim(store, now, per_webhook=10), key=str)
        assert await store.count_webhook_backlog() == 4  # being sent: still owed
        await store.settle_webhook_event(
            sent.id, sent=True, next_attempt_at=None, error=None, at=now
        )
        await fail(store, given_up.id, now)
        await fail(store, retried.id, now, retry_at=now + HOUR)
        assert await store.count_webhook_backlog() == 2  # one to retry, one still sending

    async def test_channels_needing_reauth_are_counted_per_platform(self, store):
        """``herald_channels_needing_reauth``: live parked channels only."""
        fb, fb2, li, gone = (
            channel(Platform.FACEBOOK),
            channel(Platform.FACEBOOK),
            channel(Platform.LINKEDIN),
            channel(Platform.LINKEDIN),
        )
        await store.add_channels([fb, fb2, li, gone])
        assert await store.count_channels_needing_reauth() == {}
        for parked in (fb, fb2, li, gone):
            await store.set_channel_status(parked.id, ChannelStatus.NEEDS_REAUTH)
        await store.delete_channel(gone.id, utcnow())
        await store.set_channel_status(li.id, ChannelStatus.ACTIVE)
        assert await store.count_channels_needing_reauth() == {Platform.FACEBOOK: 2}
