"""The Store contract, idempotency keys: every store claims, answers and forgets keys alike.

A key is claimed by one request at a time (``begin_idempotent``), keeps that request's answer
(``finish_idempotent``) or is given up (``release_idempotent``), and is forgotten once expired
(``purge_idempotency``). See :meth:`herald.types.Catalog.begin_idempotent`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from herald.domain import utcnow
from herald.types import KeyBusy, KeyClaimed, KeyDone, KeyMismatch, StoredResponse

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
