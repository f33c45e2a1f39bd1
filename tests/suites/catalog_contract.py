"""The Store contract, catalogue and outbox side: every store passes these same tests."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import time, timedelta

import pytest

from herald.domain import (
    DEFAULT_WORKSPACE,
    ApiKey,
    Attempt,
    ChannelStatus,
    ImportJob,
    NewPost,
    Platform,
    Post,
    PostingSlot,
    Transition,
    Webhook,
    Workspace,
    new_id,
    utcnow,
)
from herald.errors import InvalidInput, NotFound
from herald.states import DeliveryState
from herald.testing import channel, new_post
from herald.types import StoredResponse

S = DeliveryState
HOUR = timedelta(hours=1)


async def workspace(store, name="Acme") -> Workspace:
    ws = Workspace(new_id("ws"), name)
    await store.add_workspace(ws)
    return ws


class CatalogContract:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def test_workspaces(self, store):
        ws = await workspace(store)
        assert await store.get_workspace(ws.id) == ws
        with pytest.raises(NotFound):
            await store.get_workspace("ws_nope")
        with pytest.raises(InvalidInput):
            await store.add_workspace(ws)

    async def test_list_workspaces_lists_every_one_by_id(self, store):
        assert [w.id for w in await store.list_workspaces()] == [DEFAULT_WORKSPACE]  # seeded
        b, a = await workspace(store, "B"), await workspace(store, "A")
        listed = await store.list_workspaces()
        assert [w.id for w in listed] == sorted([DEFAULT_WORKSPACE, a.id, b.id])
        assert a in listed
        assert b in listed

    async def test_api_keys_are_found_by_prefix_and_revoked(self, store):
        ws = await workspace(store)
        key = ApiKey(new_id("key"), ws.id, "hk_abc123", "deploy bot")
        await store.add_api_key(key, "digest")
        assert await store.api_key_by_prefix("hk_abc123") == (key, "digest")
        assert await store.api_key_by_prefix("hk_other") is None
        with pytest.raises(InvalidInput):
            await store.add_api_key(ApiKey(new_id("key"), ws.id, "hk_abc123", "dup"), "x")
        at = utcnow()
        await store.revoke_api_key(key.id, at)
        found, _ = await store.api_key_by_prefix("hk_abc123")
        assert found.revoked_at == at
        assert [k.id for k in await store.list_api_keys(ws.id)] == [key.id]

    async def test_channels_by_workspace_update_and_delete(self, store):
        a, b = await workspace(store, "A"), await workspace(store, "B")
        ca, cb = channel(workspace_id=a.id), channel(workspace_id=b.id)
        await store.add_channels([ca, cb])
        assert [c.id for c in await store.list_channels(a.id)] == [ca.id]
        renamed = replace(ca, name="Renamed", timezone="Asia/Tokyo", credentials_ref="vault:")
        await store.update_channel(renamed)
        got = await store.get_channel(ca.id)
        assert (got.name, got.timezone, got.credentials_ref) == ("Renamed", "Asia/Tokyo", "vault:")
        due = await store.add_posts([new_post([ca], due_at=utcnow() + HOUR)])
        assert await store.delete_channel(ca.id, utcnow()) == 1
        assert (await store.get_delivery(due[0].id)).state is S.CANCELLED
        assert (await store.get_channel(ca.id)).deleted_at is not None
        assert await store.list_channels(a.id) == []
        with pytest.raises(NotFound):
            await store.delete_channel(ca.id, utcnow())

    async def test_an_account_is_unique_per_workspace(self, store):
        agency, client = await workspace(store, "Agency"), await workspace(store, "Client")
        page = channel(workspace_id=agency.id, external_id="page-1")
        await store.add_channels([page])
        # An agency and its client may both connect the same Page.
        theirs = channel(workspace_id=client.id, external_id="page-1")
        await store.add_channels([theirs])
        assert [c.id for c in await store.list_channels(client.id)] == [theirs.id]
        assert await store.get_channel(theirs.id) == theirs
        with pytest.raises(InvalidInput):
            await store.add_channels([channel(workspace_id=agency.id, external_id="page-1")])
        twice = [channel(workspace_id=client.id, external_id="p2") for _ in range(2)]
        with pytest.raises(InvalidInput):
            await store.add_channels(twice)
        assert [c.id for c in await store.list_channels(client.id)] == [theirs.id]  # all or nothing
        # The same id on another platform is another account.
        await store.add_channels(
            [channel(Platform.INSTAGRAM, workspace_id=agency.id, external_id="page-1")]
        )
        assert len(await store.list_channels(agency.id)) == 2

    async def test_channel_secret(self, store):
        c = channel()
        await store.add_channels([c])
        assert await store.get_channel_secret(c.id) is None
        await store.set_channel_secret(c.id, b"\x00cipher")
        assert await store.get_channel_secret(c.id) == b"\x00cipher"

    async def test_channels_are_added_with_their_secrets_in_one_write(self, store):
        ws = await workspace(store)
        a, b = channel(workspace_id=ws.id), channel(workspace_id=ws.id)
        await store.add_channels([a, b], secrets={a.id: b"\x00sealed-a"})
        assert await store.get_channel_secret(a.id) == b"\x00sealed-a"
        assert await store.get_channel_secret(b.id) is None
        assert (await store.get_channel(a.id)).status is ChannelStatus.ACTIVE
        # All or nothing: a batch refused stores no channel and no secret.
        fresh = channel(workspace_id=ws.id)
        taken = channel(workspace_id=ws.id, external_id=a.external_id)
        with pytest.raises(InvalidInput):
            await store.add_channels([fresh, taken], secrets={fresh.id: b"s", taken.id: b"t"})
        assert [c.id for c in await store.list_channels(ws.id)] == sorted([a.id, b.id])
        with pytest.raises(NotFound):
            await store.get_channel_secret(fresh.id)

    async def test_posting_schedule_replaces_and_busy_times(self, store):
        c = channel()
        await store.add_channels([c])
        await store.set_schedule(c.id, [PostingSlot(0, time(9, 0)), PostingSlot(2, time(17, 30))])
        await store.set_schedule(c.id, [PostingSlot(4, time(8, 15)), PostingSlot(4, time(8, 15))])
        assert await store.get_schedule(c.id) == [PostingSlot(4, time(8, 15))]
        with pytest.raises(NotFound):
            await store.set_schedule("ch_nope", [])
        now = utcnow()
        taken = now + HOUR
        await store.add_posts([new_post([c], due_at=taken)])
        assert await store.busy_times(c.id, now, now + 2 * HOUR) == {taken}
        assert await store.busy_times(c.id, now + 2 * HOUR, now + 3 * HOUR) == set()

    async def test_list_posts_filters_and_cursor(self, store):
        ws = await workspace(store)
        c1, c2 = channel(workspace_id=ws.id), channel(workspace_id=ws.id)
        other = channel()
        await store.add_channels([c1, c2, other])
        now = utcnow()
        posts = []
        for i in range(5):
            base = new_post([c1 if i % 2 else c2], due_at=now + i * HOUR)
            post = Post(
                base.post.id,
                base.post.content,
                created_at=now + timedelta(seconds=i),
                workspace_id=ws.id,
            )
            posts.append(NewPost(post, base.deliveries))
        await store.add_posts(posts)
        await store.add_posts([new_post([other])])
        ids = [p.post.id for p in posts]
        assert [p.id for p in await store.list_posts(ws.id)] == ids
        page = await store.list_posts(ws.id, limit=2)
        nxt = await store.list_posts(ws.id, limit=2, after=(page[-1].created_at, page[-1].id))
        assert [p.id for p in page + nxt] == ids[:4]
        assert [p.id for p in await store.list_posts(ws.id, channel_id=c1.id)] == [ids[1], ids[3]]
        ranged = await store.list_posts(ws.id, due_from=now + HOUR, due_to=now + 3 * HOUR)
        assert [p.id for p in ranged] == [ids[1], ids[2]]
        assert await store.list_posts(ws.id, state=S.PUBLISHED) == []
        assert len(await store.list_posts(ws.id, state=S.SCHEDULED)) == 5
        grouped = await store.deliveries_of([ids[0], ids[1]])
        assert [d.post_id for d in grouped[ids[0]]] == [ids[0]]

    async def test_reads_that_may_lag_see_the_writes_before_them(self, store):
        # Without a replica (every store here), a block of reads that may lag reads as always:
        # what was just written, and nothing is written through it.
        ws = await workspace(store)
        c = channel(workspace_id=ws.id)
        await store.add_channels([c])
        added = new_post([c])
        post = replace(added.post, workspace_id=ws.id)
        await store.add_posts([NewPost(post, added.deliveries)])

        async def read():
            return await store.list_posts(ws.id), await store.deliveries_of([post.id])

        posts, deliveries = await store.lagging_reads(read)
        assert [p.id for p in posts] == [post.id]
        assert len(deliveries[post.id]) == 1

    async def test_webhooks(self, store):
        ws = await workspace(store)
        hook = Webhook(new_id("wh"), ws.id, "https://example.com/hook", ("delivery.published",))
        await store.add_webhook(hook, b"secret-cipher")
        assert await store.list_webhooks(ws.id) == [hook]
        assert await store.get_webhook_secret(hook.id) == b"secret-cipher"
        await store.delete_webhook(hook.id)
        assert await store.list_webhooks(ws.id) == []
        with pytest.raises(NotFound):
            await store.delete_webhook(hook.id)

    async def test_webhook_secret_is_replaced(self, store):
        ws = await workspace(store)
        hook = Webhook(new_id("wh"), ws.id, "https://example.com/hook", ("delivery.failed",))
        await store.add_webhook(hook, b"old-cipher")
        await store.set_webhook_secret(hook.id, b"\x00new-cipher")
        assert await store.get_webhook_secret(hook.id) == b"\x00new-cipher"
        assert await store.list_webhooks(ws.id) == [hook]  # nothing else changed
        with pytest.raises(NotFound):
            await store.set_webhook_secret("wh_nope", b"x")
        await store.delete_webhook(hook.id)
        with pytest.raises(NotFound):
            await store.set_webhook_secret(hook.id, b"x")

    async def test_events_are_recorded_for_subscribed_webhooks_of_the_workspace(self, store):
        ws, other = await workspace(store, "A"), await workspace(store, "B")
        c = channel(workspace_id=ws.id)
        await store.add_channels([c])
        wanted = Webhook(new_id("wh"), ws.id, "https://a.example/h", ("delivery.published",))
        unrelated = Webhook(new_id("wh"), ws.id, "https://a.example/f", ("delivery.failed",))
        foreign = Webhook(new_id("wh"), other.id, "https://b.example/h", ("delivery.published",))
        for hook in (wanted, unrelated, foreign):
            await store.add_webhook(hook, b"s")
        base = new_post([c])
        post = Post(base.post.id, base.post.content, workspace_id=ws.id)
        await store.add_posts([NewPost(post, base.deliveries)])
        now = utcnow()
        (job,) = (
            await store.claim_due(
                now=now, limit=5, lease_until=now + HOUR, expire_before=now - timedelta(days=1)
            )
        ).jobs
        await store.apply([Transition(job.delivery.id, S.PUBLISHING, claim_token=job.claim_token)])
        await store.apply(
            [
                Transition(
                    job.delivery.id,
                    S.PUBLISHED,
                    claim_token=job.claim_token,
                    external_id="fb_1",
                    event="delivery.published",
                )
            ]
        )
        later = utcnow() + timedelta(seconds=1)
        events = await store.claim_webhook_events(now=later, limit=10, lease_until=later + HOUR)
        assert [(e.webhook_id, e.event) for e in events] == [(wanted.id, "delivery.published")]
        payload = events[0].payload
        assert payload["delivery_id"] == job.delivery.id
        assert payload["state"] == "published"
        assert payload["external_id"] == "fb_1"
        assert payload["platform"] == c.platform.value
        assert events[0].attempts == 1
        assert await store.claim_webhook_events(now=later, limit=10, lease_until=later + HOUR) == []

    async def test_an_event_is_not_recorded_when_its_change_does_not_apply(self, store):
        ws = await workspace(store)
        c = channel(workspace_id=ws.id)
        await store.add_channels([c])
        await store.add_webhook(
            Webhook(new_id("wh"), ws.id, "https://a.example/h", ("delivery.failed",)), b"s"
        )
        (d,) = await store.add_posts([new_post([c])])
        stale = Transition(d.id, S.FAILED, claim_token="stale", event="delivery.failed")
        assert await store.apply([stale]) == [False]
        later = utcnow() + HOUR
        assert await store.claim_webhook_events(now=later, limit=10, lease_until=later) == []

    async def test_outbox_retry_failure_and_lease_recovery(self, store):
        ws = await workspace(store)
        c = channel(workspace_id=ws.id)
        await store.add_channels([c])
        hook = Webhook(new_id("wh"), ws.id, "https://a.example/h", ("channel.needs_reauth",))
        await store.add_webhook(hook, b"s")
        await store.set_channel_status(
            c.id, ChannelStatus.NEEDS_REAUTH, event="channel.needs_reauth"
        )
        t0 = utcnow() + timedelta(seconds=1)
        (event,) = await store.claim_webhook_events(now=t0, limit=5, lease_until=t0 + HOUR)
        assert event.payload["channel_id"] == c.id
        assert event.payload["status"] == "needs_reauth"
        retry_at = t0 + timedelta(seconds=30)
        await store.settle_webhook_event(
            event.id, sent=False, next_attempt_at=retry_at, error="503", at=t0
        )
        assert await store.next_webhook_event_at() == retry_at
        assert await store.claim_webhook_events(now=t0, limit=5, lease_until=t0 + HOUR) == []
        (again,) = await store.claim_webhook_events(
            now=retry_at, limit=5, lease_until=retry_at + timedelta(seconds=10)
        )
        assert again.attempts == 2
        # The sender died: its lease runs out and the event is handed out again.
        later = retry_at + timedelta(seconds=20)
        (third,) = await store.claim_webhook_events(now=later, limit=5, lease_until=later + HOUR)
        assert third.attempts == 3
        await store.settle_webhook_event(
            third.id, sent=True, next_attempt_at=None, error=None, at=later
        )
        assert await store.next_webhook_event_at() is None
        end = later + HOUR * 2
        assert await store.claim_webhook_events(now=end, limit=5, lease_until=end) == []

    async def test_outbox_gives_up(self, store):
        ws = await workspace(store)
        c = channel(workspace_id=ws.id)
        await store.add_channels([c])
        await store.add_webhook(
            Webhook(new_id("wh"), ws.id, "https://a.example/h", ("channel.needs_reauth",)), b"s"
        )
        await store.set_channel_status(
            c.id, ChannelStatus.NEEDS_REAUTH, event="channel.needs_reauth"
        )
        t0 = utcnow() + timedelta(seconds=1)
        (event,) = await store.claim_webhook_events(now=t0, limit=5, lease_until=t0 + HOUR)
        await store.settle_webhook_event(
            event.id, sent=False, next_attempt_at=None, error="410", at=t0
        )
        assert await store.next_webhook_event_at() is None

    async def test_a_deleted_channel_s_account_can_be_connected_again(self, store):
        ws = await workspace(store)
        first = channel(workspace_id=ws.id, external_id="page-7")
        await store.add_channels([first])
        with pytest.raises(InvalidInput):
            await store.add_channels([channel(workspace_id=ws.id, external_id="page-7")])
        await store.delete_channel(first.id, utcnow())
        again = channel(workspace_id=ws.id, external_id="page-7")
        await store.add_channels([again])
        assert [c.id for c in await store.list_channels(ws.id)] == [again.id]

    # -- slot locks -------------------------------------------------------------------------
    async def test_slot_locks_of_one_channel_take_turns(self, store):
        await slot_lock_turns(store, store)

    async def test_slot_lock_is_released_by_an_error_and_a_cancelled_wait(self, store):
        with pytest.raises(RuntimeError):
            async with store.slot_lock(["ch_a"]):
                raise RuntimeError("the search failed")
        async with store.slot_lock(["ch_a"]):
            waiting = asyncio.create_task(hold(store, ["ch_a", "ch_b"]))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        async with asyncio.timeout(5):  # neither left a lock behind
            async with store.slot_lock(["ch_b", "ch_a"]):
                pass


async def hold(store, channel_ids, log=None, name="", seconds=0.0) -> None:
    async with store.slot_lock(channel_ids):
        if log is not None:
            log.append(f"{name}+")
        await asyncio.sleep(seconds)
        if log is not None:
            log.append(f"{name}-")


async def slot_lock_turns(one, other) -> None:
    """``one`` and ``other`` are the same store, or two instances on the same data (two
    processes): holders of a shared channel never overlap, and overlapping sets taken in any
    order do not deadlock. (Holders of disjoint channels may: SQLite has one lock per file.)"""
    log: list[str] = []
    async with asyncio.timeout(10):
        await asyncio.gather(
            hold(one, ["ch_a", "ch_b"], log, "1", 0.2),
            hold(other, ["ch_b", "ch_c"], log, "2", 0.2),
            hold(one, ["ch_c", "ch_a"], log, "3", 0.2),
        )
    # Each holder's "-" comes right after its "+": no two ever held ch_a, ch_b or ch_c at once.
    assert [entry[1] for entry in log] == ["+", "-"] * 3


class Populated:
    """A workspace with one of everything a workspace can hold, and every id of it."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.ids: set[str] = {ws.id}
        self.key_prefix = ""

    @classmethod
    async def make(cls, store, name: str) -> Populated:
        made = cls(await workspace(store, name))
        ws = made.ws
        key = ApiKey(new_id("key"), ws.id, f"hk_{new_id('p')[-8:]}", "bot")
        await store.add_api_key(key, "digest")
        made.key_prefix = key.prefix
        c = channel(workspace_id=ws.id)
        await store.add_channels([c])
        await store.set_channel_secret(c.id, b"sealed-credentials")
        await store.set_schedule(c.id, [PostingSlot(0, time(9, 0))])
        hook = Webhook(new_id("wh"), ws.id, "https://a.example/h", ("delivery.published",))
        await store.add_webhook(hook, b"sealed-secret")
        base = new_post([c])
        post = Post(base.post.id, base.post.content, workspace_id=ws.id)
        (delivery,) = await store.add_posts([NewPost(post, base.deliveries)])
        made.ids |= {key.id, key.prefix, c.id, hook.id, post.id, delivery.id}
        now = utcnow()
        retried = f"retry-{post.id}"
        claimed = await store.begin_idempotent(
            ws.id, retried, "fp", now=now, locked_until=now + HOUR, expires_at=now + 24 * HOUR
        )
        await store.finish_idempotent(
            ws.id, retried, claimed.token, StoredResponse(201, (), b"sealed-answer")
        )
        made.ids.add(retried)
        job = ImportJob(new_id("imp"), ws.id, runner="r1", lease_until=now + HOUR)
        assert await store.add_import(job, max_running=5)
        imported = new_post([c])
        imported = NewPost(
            Post(imported.post.id, imported.post.content, workspace_id=ws.id), imported.deliveries
        )
        await store.add_import_posts(replace(job, posts_written=1), [(2, imported)])
        made.ids |= {job.id, imported.post.id, imported.deliveries[0].id}
        return made

    async def publish(self, store) -> None:
        """Claim and publish every due delivery (of any workspace): attempts and events."""
        now = utcnow()
        batch = await store.claim_due(
            now=now, limit=50, lease_until=now + HOUR, expire_before=now - timedelta(days=1)
        )
        for job in batch.jobs:
            await store.apply(
                [Transition(job.delivery.id, S.PUBLISHING, claim_token=job.claim_token)]
            )
            await store.apply(
                [
                    Transition(
                        job.delivery.id,
                        S.PUBLISHED,
                        claim_token=job.claim_token,
                        external_id=f"fb_{job.delivery.id}",
                        event="delivery.published",
                        attempt=Attempt(job.delivery.id, 1, now, now, "published"),
                    )
                ]
            )


class ErasureContract:
    """Catalog.erase_workspace, on every store (tests/integration/test_workspace_erasure.py
    also reads every table of the SQL stores for what could be left)."""

    async def test_erasing_a_workspace_leaves_nothing_of_it_and_keeps_the_others(self, store):
        gone = await Populated.make(store, "Gone")
        await gone.publish(store)  # its attempt and its webhook event
        kept = await Populated.make(store, "Kept")
        counts = await store.erase_workspace(gone.ws.id)
        assert counts == {
            "attempts": 1,
            "webhook_events": 1,
            "import_posts": 1,
            "deliveries": 2,
            "posting_slots": 1,
            "posts": 2,
            "imports": 1,
            "webhooks": 1,
            "channels": 1,
            "api_keys": 1,
            "idempotency_keys": 1,
            "workspace": 1,
        }
        with pytest.raises(NotFound):
            await store.get_workspace(gone.ws.id)
        assert await store.api_key_by_prefix(gone.key_prefix) is None
        assert await store.list_api_keys(gone.ws.id) == []
        assert await store.list_channels(gone.ws.id) == []
        assert await store.list_posts(gone.ws.id) == []
        assert await store.list_webhooks(gone.ws.id) == []
        for found in (await store.list_channels(), await store.list_workspaces()):
            assert not {x.id for x in found} & gone.ids
        # The other workspace lost nothing.
        assert await store.api_key_by_prefix(kept.key_prefix) is not None
        (kept_channel,) = await store.list_channels(kept.ws.id)
        assert await store.get_channel_secret(kept_channel.id) == b"sealed-credentials"
        assert len(await store.get_schedule(kept_channel.id)) == 1
        assert len(await store.list_posts(kept.ws.id)) == 2  # its own and its import's
        assert len(await store.list_webhooks(kept.ws.id)) == 1
        later = utcnow() + timedelta(seconds=1)
        events = await store.claim_webhook_events(now=later, limit=10, lease_until=later + HOUR)
        assert events == []  # gone's event went with it; kept had none yet
        with pytest.raises(NotFound):
            await store.erase_workspace(gone.ws.id)
