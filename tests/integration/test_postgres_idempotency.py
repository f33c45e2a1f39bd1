"""Idempotency keys on PostgreSQL: the contract, and one claim per key across processes.

Several API processes share one database: two stores (two connection pools) on one schema
stand for them here. Of requests with one key arriving at once through both, exactly one
claims it; the others see it in progress, then its answer.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from herald.domain import utcnow
from herald.types import KeyBusy, KeyClaimed, KeyDone, StoredResponse
from tests.suites.idempotency_contract import IdempotencyContract

pytestmark = pytest.mark.postgres

LOCK, TTL = timedelta(seconds=60), timedelta(hours=24)


class TestIdempotencyContractOnPostgres(IdempotencyContract):
    pass


async def test_two_pools_claiming_one_key_at_once_let_exactly_one_through(pg_stores):
    a, b = await pg_stores.open(pool_size=6), await pg_stores.open(pool_size=6)
    now = utcnow()

    async def begin(store, key):
        return await store.begin_idempotent(
            "ws_a", key, "fp", now=now, locked_until=now + LOCK, expires_at=now + TTL
        )

    for round_ in range(20):
        key = f"key-{round_}"
        started = await asyncio.gather(*(begin(store, key) for store in (a, b) * 6))
        claimed = [s for s in started if isinstance(s, KeyClaimed)]
        assert len(claimed) == 1, started
        assert [s for s in started if s not in claimed] == [KeyBusy(now + LOCK)] * 11
        answer = StoredResponse(201, (("location", f"/v1/posts/{key}"),), key.encode())
        # The answer written through one pool is what the other pool's requests get back.
        assert await a.finish_idempotent("ws_a", key, claimed[0].token, answer)
        assert await begin(b, key) == KeyDone(answer)
