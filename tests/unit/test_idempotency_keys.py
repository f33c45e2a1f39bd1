"""The idempotency service's own rules, on the memory store: answers are kept encrypted, and
expired keys are purged in batches as requests come, never on a beat of their own."""

from __future__ import annotations

from datetime import timedelta

from cryptography.fernet import Fernet

from herald.domain import utcnow
from herald.service.idempotency import Claim, IdempotencyKeys
from herald.service.vault import Vault
from herald.stores.memory import MemoryStore
from herald.types import KeyDone, StoredResponse


def keys_on(store, now, **kw) -> IdempotencyKeys:
    vault = Vault([Fernet.generate_key().decode()])
    return IdempotencyKeys(store, vault, ttl_s=3600, lock_s=30, clock=lambda: now[0], **kw)


async def test_an_answer_is_kept_encrypted_and_given_back_in_clear():
    store, now = MemoryStore(), [utcnow()]
    keys = keys_on(store, now)
    claim = await keys.begin("ws_a", "k", "fp")
    assert isinstance(claim, Claim)
    answer = StoredResponse(201, (("location", "/v1/api-keys/key_1"),), b'{"key": "hk_secret"}')
    assert await keys.finish(claim, answer)
    kept = await store.begin_idempotent(
        "ws_a", "k", "fp", now=now[0], locked_until=now[0], expires_at=now[0]
    )
    assert isinstance(kept, KeyDone)
    assert b"hk_secret" not in kept.response.body
    assert await keys.begin("ws_a", "k", "fp") == answer


async def test_expired_keys_are_purged_a_batch_at_a_time_and_at_most_every_interval():
    store, now = MemoryStore(), [utcnow()]
    keys = keys_on(store, now, purge_every_s=60, purge_batch=2)
    for i in range(3):
        await keys.begin("ws_a", f"k{i}", "fp")
    assert keys.purge_due()  # the first request of a process purges
    assert await keys.purge_if_due() == 0  # nothing expired yet
    assert not keys.purge_due()
    now[0] += timedelta(seconds=3600)  # all three expired; past the interval too
    assert await keys.purge_if_due() == 2
    assert keys.purge_due()  # a full batch: more may wait, the next request purges again
    assert await keys.purge_if_due() == 1
    assert not keys.purge_due()
    now[0] += timedelta(seconds=59)
    assert await keys.purge_if_due() == 0
    now[0] += timedelta(seconds=1)
    assert keys.purge_due()
