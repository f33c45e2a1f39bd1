"""Fixtures shared by every tier: stores, queues and limiters by kind, PostgreSQL, virtual time.

Each tier's conftest defines the ``store``, ``queue`` and ``new_limiter`` fixtures over the kinds
it runs on (tests/unit: memory and SQLite stores, the memory queue and limiter; tests/integration:
PostgreSQL), so the shared suites of tests/suites run on every implementation. A new back end
adds its kind to the builder here and a parameter to its tier's fixture (marked with the
server it needs).

PostgreSQL tests carry ``@pytest.mark.postgres`` (checked here) and use the server at
``HERALD_TEST_DATABASE_URL`` (default: the local one that ``scripts/services.sh`` starts). Each
test gets a schema of its own, dropped afterwards, so tests are independent and several pytest
processes can share one server. Redis tests (``@pytest.mark.redis``, ``HERALD_TEST_REDIS_URL``)
likewise get a key prefix of their own, whose keys are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from herald.limits.memory import MemoryLimiter
from herald.queues.memory import MemoryQueue
from herald.queues.redis_streams import RedisStreamQueue
from herald.stores.memory import MemoryStore
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.testing import VirtualTimeLoop
from herald.types import JobQueue, RateLimiter, Store

# The shared suites are imported by the tiers' test modules: rewrite their asserts too, so a
# failing contract shows the values it compared.
pytest.register_assert_rewrite("tests.suites")

PG_URL = os.environ.get("HERALD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def new_schema() -> str:
    return f"herald_test_{secrets.token_hex(6)}"


def needs_server(request: pytest.FixtureRequest, marker: str) -> None:
    """Fail a test that uses a server without carrying its marker: ``-m "not postgres"`` must
    be able to leave out every test that needs one, and tests/unit must need none."""
    if request.node.get_closest_marker(marker) is None:
        pytest.fail(
            f"this test needs a {marker} server: mark it @pytest.mark.{marker} and keep it in "
            "tests/integration or tests/acceptance",
            pytrace=False,
        )


@pytest.fixture
async def pg_schema(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, unique schema name; the schema (created by whoever uses it) is dropped after."""
    needs_server(request, "postgres")
    schema = new_schema()
    try:
        yield schema
    finally:
        await drop_schema(schema)


class PgStores:
    """Opens PostgreSQL stores on one schema (several stores = several engines' pools)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.opened: list[PostgresStore] = []

    async def open(self, **kw) -> PostgresStore:
        kw.setdefault("pool_size", 4)
        store = PostgresStore(PG_URL, schema=self.schema, **kw)
        await store.open()
        self.opened.append(store)
        return store

    async def close(self) -> None:
        for store in self.opened:
            await store.close()
        self.opened.clear()


@pytest.fixture
async def pg_stores(pg_schema) -> AsyncIterator[PgStores]:
    stores = PgStores(pg_schema)
    try:
        yield stores
    finally:
        await stores.close()


@asynccontextmanager
async def opened_store(kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    """An open store of ``kind`` (memory, sqlite or postgres, the last in a schema of its own,
    dropped on exit): what each tier's ``store`` fixture yields, one kind per parameter."""
    if kind == "postgres":
        stores = PgStores(new_schema())
        try:
            yield await stores.open()
        finally:
            await stores.close()
            await drop_schema(stores.schema)
        return
    s: Store = (
        MemoryStore()
        if kind == "memory"
        else SQLiteStore(tmp_path / "herald.db", synchronous="NORMAL")
    )
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def new_redis_prefix() -> str:
    return f"herald:test:{secrets.token_hex(6)}"


async def drop_keys(client: Redis, prefix: str) -> None:
    """Delete every key under ``prefix``: what a Redis test leaves behind."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)


@asynccontextmanager
async def redis_client(prefix: str) -> AsyncIterator[Redis]:
    """A client of the test Redis; the keys under ``prefix`` are deleted on exit."""
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        try:
            await drop_keys(client, prefix)
        finally:
            await client.aclose()


@asynccontextmanager
async def opened_queue(kind: str) -> AsyncIterator[JobQueue]:
    """An open, empty queue of ``kind`` (memory, or redis under a key prefix of its own,
    deleted on exit), closed on exit: what each tier's ``queue`` fixture yields, one kind per
    parameter."""
    if kind == "redis":
        prefix = new_redis_prefix()
        async with redis_client(prefix) as client:
            queue: JobQueue = RedisStreamQueue(client, prefix=prefix)
            try:
                yield queue
            finally:
                await queue.close()
        return
    if kind != "memory":
        raise ValueError(f"no queue of kind {kind!r}")
    queue = MemoryQueue()
    try:
        yield queue
    finally:
        await queue.close()


@asynccontextmanager
async def limiter_maker(kind: str) -> AsyncIterator[Callable[[], RateLimiter]]:
    """Makes limiters of ``kind`` (memory), each with no grants and no pauses, all released on
    exit: what each tier's ``new_limiter`` fixture yields, one kind per parameter."""
    if kind != "memory":
        raise ValueError(f"no limiter of kind {kind!r}")
    yield MemoryLimiter


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    # Tests marked virtual_time, in any tier, run on herald.testing's virtual-time loop: their
    # waits (pauses, limit windows, backoffs, grace periods) take no real time. pytest-asyncio
    # wants a factory for every test: asyncio's own loop for all the others.
    if item.get_closest_marker("virtual_time") is not None:
        return {"virtual_time": VirtualTimeLoop}
    return {"asyncio": asyncio.new_event_loop}
