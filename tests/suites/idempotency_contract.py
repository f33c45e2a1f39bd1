"""The Store contract, idempotency keys: every store claims, answers and forgets keys alike.

A key is claimed by one request at a time (``begin_idempotent``), keeps that request's answer
(``finish_idempotent``) or is released (``release_idempotent``), and is forgotten once expired
(``purge_idempotency``). See :meth:`herald.types.Catalog.begin_idempotent`.

And the key is tied to the request's writes (:mod:`herald.keyclaim`): every write the API
makes (:data:`WRITES`, one case per store method; tests/unit/test_key_claims.py checks that
the list covers every write the API and its services call) marks the claimed key committed in
its own transaction, and is refused, writing nothing, once the claim was taken over. A
committed key is never taken over nor given up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import time, timedelta
from typing import Any

import pytest

from herald import keyclaim
from herald.domain import (
    ApiKey,
    Channel,
    ChannelStatus,
    Delivery,
    ImportJob,
    NewPost,
    Post,
    PostingSlot,
    Transition,
    Webhook,
    Workspace,
    new_id,
    utcnow,
)
from herald.errors import IdempotencyClaimLost, InvalidInput, NotFound
from herald.keyclaim import KeyClaim
from herald.states import DeliveryState
from herald.testing import channel, new_post
from herald.types import (
    KeyBusy,
    KeyClaimed,
    KeyDone,
    KeyMismatch,
    KeyUnanswered,
    StoredResponse,
)

LOCK = timedelta(seconds=60)
TTL = timedelta(hours=24)
ANSWER = StoredResponse(
    201,
    (("content-type", "application/json"), ("location", "/v1/posts/pst_1")),
    b"\x00\xffencrypted bytes, kept as they are",
)


async def begin(store, key="key-1", fingerprint="fp-a", *, ws="ws_a", now=None):
    now = now or utcnow()
    return await store.begin_idempotent(
        ws, key, fingerprint, now=now, locked_until=now + LOCK, expires_at=now + TTL
    )


async def claim(store, key="key-1", fingerprint="fp-a", *, ws="ws_a", now=None) -> str:
    started = await begin(store, key, fingerprint, ws=ws, now=now)
    assert isinstance(started, KeyClaimed), started
    return started.token


# -- the writes the API makes, each changing something of a small world ----------------------
@dataclass(frozen=True)
class World:
    ws: Workspace
    key: ApiKey
    channel: Channel
    webhook: Webhook
    event_id: str  # sent: it may be replayed
    post: Post
    delivery: Delivery


async def world(store) -> World:
    ws = Workspace(new_id("ws"), "Acme")
    await store.add_workspace(ws)
    key = ApiKey(new_id("key"), ws.id, f"hk_{new_id('p')[-8:]}", "bot")
    await store.add_api_key(key, "digest")
    c = channel(workspace_id=ws.id)
    await store.add_channels([c], secrets={c.id: b"sealed"})
    hook = Webhook(new_id("wh"), ws.id, "https://a.example/h", ("channel.needs_reauth",))
    await store.add_webhook(hook, b"sealed-secret")
    await store.set_channel_status(c.id, ChannelStatus.ACTIVE, event="channel.needs_reauth")
    now = utcnow()
    (event,) = await store.claim_webhook_events(now=now, limit=5, lease_until=now + LOCK)
    await store.settle_webhook_event(event.id, sent=True, next_attempt_at=None, error=None, at=now)
    made = new_post([c], due_at=utcnow() + timedelta(hours=2))
    post = replace(made.post, workspace_id=ws.id)
    (delivery,) = await store.add_posts([NewPost(post, made.deliveries)])
    return World(ws, key, c, hook, event.id, post, delivery)


def _another_post(w: World) -> NewPost:
    made = new_post([w.channel], due_at=utcnow() + timedelta(hours=3))
    return NewPost(replace(made.post, workspace_id=w.ws.id), made.deliveries)


def _another_channel(w: World) -> list[Channel]:
    return [channel(workspace_id=w.ws.id)]


#: Every store write the API and its services make, as a call that changes something.
WRITES: dict[str, Callable[[Any, World], Awaitable[object]]] = {
    "add_workspace": lambda s, w: s.add_workspace(Workspace(new_id("ws"), "Other")),
    "add_api_key": lambda s, w: s.add_api_key(
        ApiKey(new_id("key"), w.ws.id, f"hk_{new_id('p')[-8:]}", "ci"), "digest"
    ),
    "revoke_api_key": lambda s, w: s.revoke_api_key(w.key.id, utcnow()),
    "erase_workspace": lambda s, w: s.erase_workspace(w.ws.id),
    "add_channels": lambda s, w: s.add_channels(_another_channel(w)),
    "update_channel": lambda s, w: s.update_channel(replace(w.channel, name="Renamed")),
    "delete_channel": lambda s, w: s.delete_channel(w.channel.id, utcnow()),
    "set_channel_secret": lambda s, w: s.set_channel_secret(w.channel.id, b"resealed"),
    "set_channel_status": lambda s, w: s.set_channel_status(w.channel.id, ChannelStatus.DISABLED),
    "set_schedule": lambda s, w: s.set_schedule(w.channel.id, [PostingSlot(1, time(10, 0))]),
    "add_posts": lambda s, w: s.add_posts([_another_post(w)]),
    "apply": lambda s, w: s.apply([Transition(w.delivery.id, DeliveryState.CANCELLED)]),
    "add_webhook": lambda s, w: s.add_webhook(
        Webhook(new_id("wh"), w.ws.id, "https://b.example/h", ("delivery.failed",)), b"sealed"
    ),
    "set_webhook_secret": lambda s, w: s.set_webhook_secret(w.webhook.id, b"resealed"),
    "delete_webhook": lambda s, w: s.delete_webhook(w.webhook.id),
    "enable_webhook": lambda s, w: s.enable_webhook(w.webhook.id),
    "replay_webhook_event": lambda s, w: s.replay_webhook_event(w.event_id, at=utcnow()),
    "add_import": lambda s, w: s.add_import(
        ImportJob(new_id("imp"), w.ws.id, runner="r", lease_until=utcnow() + LOCK), max_running=2
    ),
}


async def snapshot(store, w: World) -> tuple:
    """What the writes of :data:`WRITES` change, read back."""
    channels = await store.list_channels(w.ws.id)
    return (
        await store.list_workspaces(),
        await store.list_api_keys(w.ws.id),
        channels,
        [await store.get_channel(c.id) for c in channels],
        [await store.get_channel_secret(c.id) for c in channels],
        [await store.get_schedule(c.id) for c in channels],
        await store.list_posts(w.ws.id),
        await store.deliveries_of([w.post.id]),
        await store.list_webhooks(w.ws.id),
        [await store.get_webhook_secret(h.id) for h in await store.list_webhooks(w.ws.id)],
        await store.list_webhook_events(w.webhook.id),
        await store.list_imports(w.ws.id),
    )


class IdempotencyContract:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def test_a_claimed_key_is_busy_for_the_same_request_and_refused_to_another(self, store):
        now = utcnow()
        await claim(store, now=now)
        assert await begin(store, now=now) == KeyBusy(now + LOCK)
        assert await begin(store, fingerprint="fp-b", now=now) == KeyMismatch()

    async def test_a_finished_key_gives_its_answer_back_as_stored(self, store):
        token = await claim(store)
        assert await store.finish_idempotent("ws_a", "key-1", token, ANSWER)
        assert await begin(store) == KeyDone(ANSWER)
        assert await begin(store, fingerprint="fp-b") == KeyMismatch()
        # Answered once: the same claim cannot write another answer, nor give the key up.
        other = StoredResponse(200, (), b"{}")
        assert not await store.finish_idempotent("ws_a", "key-1", token, other)
        assert not await store.release_idempotent("ws_a", "key-1", token)
        assert await begin(store) == KeyDone(ANSWER)

    async def test_a_released_key_is_free_and_its_old_claim_writes_nothing(self, store):
        first = await claim(store)
        assert await store.release_idempotent("ws_a", "key-1", first)
        assert not await store.release_idempotent("ws_a", "key-1", first)
        # Free for any request now, even another one.
        second = await claim(store, fingerprint="fp-b")
        assert second != first
        assert not await store.finish_idempotent("ws_a", "key-1", first, ANSWER)
        assert await store.finish_idempotent("ws_a", "key-1", second, ANSWER)

    async def test_keys_belong_to_their_workspace_and_are_case_sensitive(self, store):
        now = utcnow()
        token = await claim(store, ws="ws_a", now=now)
        await claim(store, ws="ws_b", fingerprint="fp-b", now=now)
        await claim(store, key="KEY-1", ws="ws_a", fingerprint="fp-c", now=now)
        assert not await store.finish_idempotent("ws_b", "key-1", token, ANSWER)
        assert await store.finish_idempotent("ws_a", "key-1", token, ANSWER)
        assert await begin(store, ws="ws_a", now=now) == KeyDone(ANSWER)
        assert await begin(store, ws="ws_b", fingerprint="fp-b", now=now) == KeyBusy(now + LOCK)

    async def test_a_claim_left_past_its_lock_is_taken_over_by_the_same_request(self, store):
        then = utcnow()
        stale = await claim(store, now=then)
        later = then + LOCK
        # Another request still may not use the key...
        assert await begin(store, fingerprint="fp-b", now=later) == KeyMismatch()
        # ...the same one takes it over, and the dead request's claim writes nothing any more.
        fresh = await claim(store, now=later)
        assert fresh != stale
        assert not await store.finish_idempotent("ws_a", "key-1", stale, ANSWER)
        assert not await store.release_idempotent("ws_a", "key-1", stale)
        assert await begin(store, now=later) == KeyBusy(later + LOCK)

    async def test_an_expired_key_is_new_again_for_any_request(self, store):
        then = utcnow()
        token = await claim(store, now=then)
        await store.finish_idempotent("ws_a", "key-1", token, ANSWER)
        just_before = then + TTL - timedelta(microseconds=1)
        assert await begin(store, now=just_before) == KeyDone(ANSWER)
        await claim(store, fingerprint="fp-b", now=then + TTL)

    async def test_purge_deletes_expired_keys_in_batches(self, store):
        then = utcnow()
        for i in range(5):
            await claim(store, key=f"old-{i}", now=then)
        token = await claim(store, key="young", now=then + timedelta(hours=1))
        await store.finish_idempotent("ws_a", "young", token, ANSWER)
        expired = then + TTL
        assert await store.purge_idempotency(expired, limit=3) == 3
        assert await store.purge_idempotency(expired, limit=3) == 2
        assert await store.purge_idempotency(expired, limit=3) == 0
        # The young key's answer stays; the purged ones are gone (claimed anew, another body).
        assert await begin(store, key="young", now=expired) == KeyDone(ANSWER)
        await claim(store, key="old-0", fingerprint="fp-b", now=then + timedelta(hours=2))

    async def test_of_requests_claiming_at_once_exactly_one_gets_the_key(self, store):
        now = utcnow()
        for key in ("k-1", "k-2", "k-3"):
            started = await asyncio.gather(*(begin(store, key, now=now) for _ in range(8)))
            claimed = [s for s in started if isinstance(s, KeyClaimed)]
            assert len(claimed) == 1, started
            assert all(s == KeyBusy(now + LOCK) for s in started if s not in claimed)

    # -- the key tied to the request's writes (herald.keyclaim) ------------------------------
    @pytest.mark.parametrize("write", sorted(WRITES))
    async def test_every_write_of_the_api_marks_its_claimed_key_committed(self, store, write):
        w = await world(store)
        then = utcnow()
        token = await claim(store, ws=w.ws.id, now=then)
        with keyclaim.holding(KeyClaim(w.ws.id, "key-1", token)):
            await WRITES[write](store, w)
        if write == "erase_workspace":  # the key went with its workspace
            assert not await store.finish_idempotent(w.ws.id, "key-1", token, ANSWER)
            assert isinstance(await begin(store, ws=w.ws.id, now=then), KeyClaimed)
            return
        # Its work committed: a retry waits while the request may still answer, then is told
        # the work was done; never is the key taken over, nor given up.
        assert await begin(store, ws=w.ws.id, now=then) == KeyBusy(then + LOCK)
        assert await begin(store, ws=w.ws.id, now=then + LOCK) == KeyUnanswered()
        assert await begin(store, ws=w.ws.id, fingerprint="fp-b", now=then) == KeyMismatch()
        assert not await store.release_idempotent(w.ws.id, "key-1", token)
        assert await begin(store, ws=w.ws.id, now=then) == KeyUnanswered()  # its lock ended
        # The request's answer may still be kept.
        assert await store.finish_idempotent(w.ws.id, "key-1", token, ANSWER)
        assert await begin(store, ws=w.ws.id, now=then + LOCK) == KeyDone(ANSWER)

    @pytest.mark.parametrize("write", sorted(WRITES))
    async def test_a_write_under_a_claim_taken_over_is_refused_and_writes_nothing(
        self, store, write
    ):
        w = await world(store)
        then = utcnow()
        stale = await claim(store, ws=w.ws.id, now=then)
        # The request outlived its lock, and its retry took the key over.
        fresh = await claim(store, ws=w.ws.id, now=then + LOCK)
        before = await snapshot(store, w)
        lost = KeyClaim(w.ws.id, "key-1", stale)
        with keyclaim.holding(lost), pytest.raises(IdempotencyClaimLost):
            await WRITES[write](store, w)
        assert await snapshot(store, w) == before
        # The retry's claim is untouched: nothing of its work committed, it can give it up.
        assert await store.release_idempotent(w.ws.id, "key-1", fresh)

    async def test_reads_and_writes_that_change_nothing_leave_the_key_in_progress(self, store):
        w = await world(store)
        await store.add_import(ImportJob(new_id("imp"), w.ws.id), max_running=1)  # one running
        assert await store.replay_webhook_event(w.event_id, at=utcnow())  # on its way again
        token = await claim(store, ws=w.ws.id)
        missing = channel(workspace_id=w.ws.id)
        with keyclaim.holding(KeyClaim(w.ws.id, "key-1", token)):
            await store.get_workspace(w.ws.id)
            await store.list_api_keys(w.ws.id)
            await store.api_key_by_prefix(w.key.prefix)
            await store.get_channel(w.channel.id)
            await store.list_channels(w.ws.id)
            await store.get_channel_secret(w.channel.id)
            await store.get_schedule(w.channel.id)
            await store.busy_times(w.channel.id, utcnow(), utcnow() + timedelta(days=1))
            await store.get_post(w.post.id)
            await store.list_posts(w.ws.id)
            await store.deliveries_of([w.post.id])
            await store.get_delivery(w.delivery.id)
            await store.list_attempts(w.delivery.id)
            await store.list_webhooks(w.ws.id)
            await store.get_webhook_secret(w.webhook.id)
            # Refused writes, and a guarded write that does not apply, change nothing.
            for refused in (
                lambda: store.update_channel(missing),
                lambda: store.set_channel_secret(missing.id, b"x"),
                lambda: store.set_channel_status(missing.id, ChannelStatus.DISABLED),
                lambda: store.set_schedule(missing.id, []),
                lambda: store.delete_channel(missing.id, utcnow()),
                lambda: store.revoke_api_key("key_nope", utcnow()),
                lambda: store.set_webhook_secret("wh_nope", b"x"),
                lambda: store.delete_webhook("wh_nope"),
                lambda: store.erase_workspace("ws_nope"),
            ):
                with pytest.raises(NotFound):
                    await refused()
            with pytest.raises(InvalidInput):
                await store.add_channels([replace(missing, external_id=w.channel.external_id)])
            with pytest.raises(InvalidInput):
                await store.add_workspace(w.ws)
            held_elsewhere = Transition(w.delivery.id, DeliveryState.CANCELLED, claim_token="t")
            assert await store.apply([held_elsewhere]) == [False]
            assert not await store.add_import(ImportJob(new_id("imp"), w.ws.id), max_running=1)
            assert not await store.replay_webhook_event(w.event_id, at=utcnow())
        # Nothing of the request committed: its key is given up, free again.
        assert await store.release_idempotent(w.ws.id, "key-1", token)
        await claim(store, ws=w.ws.id, fingerprint="fp-b")

    async def test_only_the_claiming_task_writes_under_its_claim(self, store):
        """A task started while a request held its claim (a background task started lazily)
        keeps that context, not the claim: its writes do not mark the key, nor are refused."""
        w = await world(store)
        then = utcnow()
        stale = await claim(store, ws=w.ws.id, now=then)
        await claim(store, ws=w.ws.id, now=then + LOCK)  # taken over
        with keyclaim.holding(KeyClaim(w.ws.id, "key-1", stale)):
            started = asyncio.ensure_future(store.set_channel_secret(w.channel.id, b"later"))
        await started
        assert await store.get_channel_secret(w.channel.id) == b"later"
        assert keyclaim.current() is None
