"""Idempotency keys on PostgreSQL: the contract, and one claim per key across processes.

Several API processes share one database: two stores (two connection pools) on one schema
stand for them here. Of requests with one key arriving at once through both, exactly one
claims it; the others see it in progress, then its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import httpx
import pytest
from cryptography.fernet import Fernet

from herald.api import create_app
from herald.config import Settings
from herald.domain import utcnow
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.types import KeyBusy, KeyClaimed, KeyDone, StoredResponse
from tests.suites.idempotency_contract import IdempotencyContract

pytestmark = pytest.mark.postgres

LOCK, TTL = timedelta(seconds=60), timedelta(hours=24)
REPLAYED = "Idempotency-Replayed"


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


async def test_two_api_processes_on_one_database_create_the_post_once(pg_stores):
    """Two apps, each on its own pool (two API processes behind a load balancer): a client's
    retries of one write, spread over both at once, create one post."""
    settings = Settings(secret_keys=[Fernet.generate_key().decode()], api={"key_requests_per_s": 0})
    stores = [await pg_stores.open(), await pg_stores.open()]
    issued = await Tenancy(stores[0]).create_workspace("Acme")
    auth = {"Authorization": f"Bearer {issued.token}"}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(
                        app=create_app(settings, store, validators=VALIDATORS)
                    ),
                    base_url="http://herald.test",
                )
            )
            for store in stores
        ]
        channel = await clients[0].post(
            "/v1/channels",
            headers=auth,
            json={
                "platform": "facebook",
                "external_id": "page-1",
                "name": "Page",
                "timezone": "Europe/Paris",
                "credentials": {"access_token": "t"},
            },
        )
        body = {
            "channel_ids": [channel.json()["id"]],
            "content": {"text": "Once"},
            "scheduled_at": (utcnow() + timedelta(hours=1)).isoformat(),
        }
        for round_ in range(5):
            headers = {**auth, "Idempotency-Key": f"order-{round_}"}
            answers = await asyncio.gather(
                *(c.post("/v1/posts", json=body, headers=headers) for c in clients * 4)
            )
            fresh = [
                a for a in answers if a.status_code == 201 and a.headers.get(REPLAYED) != "true"
            ]
            assert len(fresh) == 1, [a.status_code for a in answers]
            assert {a.status_code for a in answers} <= {201, 409}
            for answer in answers:
                if answer.headers.get(REPLAYED) == "true":
                    assert answer.content == fresh[0].content
    posts = await stores[1].list_posts(issued.key.workspace_id, limit=100)
    assert len(posts) == 5
