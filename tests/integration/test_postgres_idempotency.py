"""Idempotency keys on PostgreSQL: the contract, and one claim per key across processes.

Several API processes share one database: two stores (two connection pools) on one schema
stand for them here. Of requests with one key arriving at once through both, exactly one
claims it; the others see it in progress, then its answer. What row locks decide is tested
with a transaction of a raw connection held open: a claim taken anew while a purge waits for
its row, a write in flight while a retry would take its key over.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet

from herald import keyclaim
from herald.api import create_app
from herald.config import Settings
from herald.domain import Workspace, new_id, utcnow
from herald.errors import IdempotencyClaimLost
from herald.keyclaim import KeyClaim
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.stores.contract import mark_values
from herald.stores.postgres_conn import compiled
from herald.testing import eventually
from herald.types import KeyBusy, KeyClaimed, KeyDone, KeyUnanswered, StoredResponse
from tests.conftest import PG_URL
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


# -- what row locks decide --------------------------------------------------------------------
@contextlib.asynccontextmanager
async def open_transaction(schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction of another session on ``schema``, committed on leaving the block."""
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": schema})
    try:
        async with conn.transaction():
            yield conn
    finally:
        await conn.close()


async def run(conn, name: str, **values):
    """The store's named query ``name``, run on ``conn`` (a session of the test's own)."""
    query = compiled()[name]
    return await conn.fetch(query.sql, *query.args(values))


def waiting_for_a_lock(application_name: str):
    """A condition: a session of ``application_name`` waits for a lock."""

    async def waits() -> bool:
        conn = await asyncpg.connect(PG_URL)
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND wait_event_type = 'Lock'",
                application_name,
            )
        finally:
            await conn.close()
        return bool(found)

    return waits


async def test_a_purge_never_deletes_a_key_claimed_anew_while_it_waited(pg_stores):
    """The purge picks an expired key; meanwhile a request claims it anew (the claiming
    statement, committed while the purge waits for the row): the key is that request's, and
    the purge leaves it."""
    name = f"purge-{pg_stores.schema}"
    store = await pg_stores.open(application_name=name)
    then = utcnow()
    await store.begin_idempotent(
        "ws_a", "k", "fp", now=then, locked_until=then + LOCK, expires_at=then + TTL
    )
    expired = then + TTL
    async with open_transaction(pg_stores.schema) as conn:
        claimed = await run(
            conn,
            "begin_idempotent",
            workspace_id="ws_a",
            key="k",
            fingerprint="fp",
            token="fresh",
            now=expired,
            locked_until=expired + LOCK,
            expires_at=expired + TTL,
        )
        assert [r["token"] for r in claimed] == ["fresh"]
        purging = asyncio.create_task(store.purge_idempotency(expired, limit=10))
        await eventually(waiting_for_a_lock(name))
    assert await purging == 0
    assert await store.begin_idempotent(
        "ws_a", "k", "fp", now=expired, locked_until=expired, expires_at=expired + TTL
    ) == KeyBusy(expired + LOCK)
    assert await store.release_idempotent("ws_a", "k", "fresh")


async def test_a_retry_waits_for_a_write_in_flight_and_then_finds_its_key_committed(pg_stores):
    """A request's write is in flight (its transaction marked the key, not yet committed)
    when its lock runs out: the retry's claim waits for that transaction, and then finds the
    work done, never takes the key over."""
    name = f"retry-{pg_stores.schema}"
    store = await pg_stores.open(application_name=name)
    then = utcnow()
    token = (
        await store.begin_idempotent(
            "ws_a", "k", "fp", now=then, locked_until=then + LOCK, expires_at=then + TTL
        )
    ).token
    async with open_transaction(pg_stores.schema) as conn:
        await run(conn, "mark_idempotent", **mark_values(KeyClaim("ws_a", "k", token)))
        later = then + LOCK
        retrying = asyncio.create_task(
            store.begin_idempotent(
                "ws_a", "k", "fp", now=later, locked_until=later + LOCK, expires_at=later + TTL
            )
        )
        await eventually(waiting_for_a_lock(name))
    assert await retrying == KeyUnanswered()


async def test_a_write_waits_for_a_takeover_in_flight_and_then_is_refused(pg_stores):
    """The reverse order: a retry is taking the key over (not yet committed) when the first
    request writes; its write waits, then finds the key no longer its own, and writes
    nothing."""
    name = f"write-{pg_stores.schema}"
    store = await pg_stores.open(application_name=name)
    then = utcnow()
    token = (
        await store.begin_idempotent(
            "ws_a", "k", "fp", now=then, locked_until=then + LOCK, expires_at=then + TTL
        )
    ).token
    later = then + LOCK
    workspace = Workspace(new_id("ws"), "Acme")
    async with open_transaction(pg_stores.schema) as conn:
        await run(
            conn,
            "begin_idempotent",
            workspace_id="ws_a",
            key="k",
            fingerprint="fp",
            token="fresh",
            now=later,
            locked_until=later + LOCK,
            expires_at=later + TTL,
        )

        async def write() -> None:
            with keyclaim.holding(KeyClaim("ws_a", "k", token)):
                await store.add_workspace(workspace)

        writing = asyncio.create_task(write())
        await eventually(waiting_for_a_lock(name))
    with pytest.raises(IdempotencyClaimLost):
        await writing
    assert workspace.id not in {w.id for w in await store.list_workspaces()}
    assert await store.release_idempotent("ws_a", "k", "fresh")
