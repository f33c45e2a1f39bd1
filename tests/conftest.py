"""Fixtures shared by every tier: stores, queues and limiters by kind, PostgreSQL, virtual time.

Each tier's conftest defines the ``store``, ``queue`` and ``new_limiter`` fixtures over the kinds
it runs on (tests/unit: memory and SQLite stores, the memory queue and limiter; tests/integration:
PostgreSQL), so the shared suites of tests/suites run on every implementation. A new back end
adds its kind to the builder here and a parameter to its tier's fixture (marked with the
server it needs).

PostgreSQL tests carry ``@pytest.mark.postgres`` (checked here) and use the server at
``HERALD_TEST_DATABASE_URL`` (default: the local one that ``scripts/services.sh`` starts). Each
test gets a schema of its own, dropped afterwards, so tests are independent and several pytest
processes can share one server. Redis tests carry ``@pytest.mark.redis`` and use the server at
``HERALD_TEST_REDIS_URL``, each under key prefixes of its own, deleted afterwards. RabbitMQ
tests carry ``@pytest.mark.rabbitmq`` and use the broker at ``HERALD_TEST_RABBITMQ_URL``, each
under a name prefix of its own, whose queues and exchanges are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from herald.caps.memory import MemoryCaps
from herald.caps.redis import RedisCaps
from herald.constants import DEFAULT_REGION
from herald.domain import Platform
from herald.limits.memory import MemoryLimiter
from herald.limits.redis import RedisLimiter
from herald.limits.rules import LimitClaim
from herald.queues.amqp import Topology, closed_behind
from herald.queues.memory import MemoryQueue
from herald.queues.rabbitmq import RabbitQueue
from herald.queues.redis_streams import RedisStreamQueue
from herald.stores.memory import MemoryStore
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.testing import VirtualTimeLoop
from herald.types import ConcurrencyCaps, JobQueue, RateLimiter, Store

# The shared suites are imported by the tiers' test modules: rewrite their asserts too, so a
# failing contract shows the values it compared.
pytest.register_assert_rewrite("tests.suites")

PG_URL = os.environ.get("HERALD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: A second PostgreSQL server (scripts/services.sh starts it): another region's database.
PG2_URL = os.environ.get("HERALD_TEST_DATABASE2_URL", "postgresql://postgres@127.0.0.1:5433/test")
REDIS_URL = os.environ.get("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBIT_URL = os.environ.get("HERALD_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

#: What a tier's ``new_limiter`` fixture yields: makes a limiter (rebuilt unless asked).
MakeLimiter = Callable[..., Awaitable[RateLimiter]]
#: What a tier's ``new_caps`` fixture yields: makes empty caps, granting at once.
MakeCaps = Callable[..., Awaitable[ConcurrencyCaps]]


async def drop_schema(schema: str, url: str = PG_URL) -> None:
    conn = await asyncpg.connect(url)
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


def new_redis(url: str = "") -> Redis:
    """A client of the test Redis (or of the server at ``url``); the caller closes it."""
    return Redis.from_url(url or REDIS_URL)


async def drop_keys(client: Redis, prefix: str) -> None:
    """Delete every key under ``prefix``: what a Redis test leaves behind."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.unlink(*keys)


@asynccontextmanager
async def redis_client(prefix: str) -> AsyncIterator[Redis]:
    """A client of the test Redis; the keys under ``prefix`` are deleted on exit."""
    client = new_redis()
    try:
        yield client
    finally:
        try:
            await drop_keys(client, prefix)
        finally:
            await client.aclose()


def new_rabbit_prefix() -> str:
    return f"herald.test.{secrets.token_hex(6)}"


async def drop_rabbit(
    connection: AbstractConnection, prefix: str, regions: tuple[str, ...] = (DEFAULT_REGION,)
) -> None:
    """Delete the queues (of every platform in ``regions``) and exchanges under ``prefix``:
    what a RabbitMQ test leaves behind. AMQP cannot list queues: the test names its regions."""
    t = Topology(prefix, delivery_limit=1)
    channel = await connection.channel()
    try:
        for platform in Platform:
            for region in regions:
                await channel.queue_delete(t.queue(platform, region))
        await channel.queue_delete(t.dead_queue)
        await channel.exchange_delete(t.exchange)
        await channel.exchange_delete(t.dead_exchange)
    finally:
        await channel.close()


@asynccontextmanager
async def rabbit_connection(
    prefix: str, regions: tuple[str, ...] = (DEFAULT_REGION,), url: str = ""
) -> AsyncIterator[AbstractConnection]:
    """A connection to the test RabbitMQ (or the broker at ``url``); on exit, the queues and
    exchanges under ``prefix`` are deleted and the connection closed."""
    connection = await aio_pika.connect(url or RABBIT_URL)
    try:
        yield connection
    finally:
        try:
            await drop_rabbit(connection, prefix, regions)
        finally:
            await close_rabbit(connection)


async def close_rabbit(connection: AbstractConnection) -> None:
    """Close ``connection`` and wait for the close callbacks aio-pika and aiormq run as tasks
    of their own after ``close()`` returned (those of channels still open at the close: a
    queue closed with jobs never acked keeps its channels); still running when the test's
    event loop closes, they would be destroyed pending, which fails the test."""
    await connection.close()
    await closed_behind(10.0)


@asynccontextmanager
async def opened_queue(kind: str) -> AsyncIterator[JobQueue]:
    """An open, empty queue of ``kind`` (memory; redis under a key prefix of its own, or
    rabbitmq under a name prefix of its own, deleted on exit), closed on exit: what each tier's
    ``queue`` fixture yields, one kind per parameter."""
    if kind == "rabbitmq":
        prefix = new_rabbit_prefix()
        async with rabbit_connection(prefix) as connection:
            queue: JobQueue = RabbitQueue(connection, prefix=prefix)
            try:
                yield queue
            finally:
                await queue.close()
        return
    if kind == "redis":
        prefix = new_redis_prefix()
        async with redis_client(prefix) as client:
            queue = RedisStreamQueue(client, prefix=prefix)
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


async def _no_grants() -> list[tuple[float, list[LimitClaim]]]:
    return []


@asynccontextmanager
async def _redis_prefixes(kind: str) -> AsyncIterator[tuple[Redis | None, list[str]]]:
    """For ``kind`` redis, a client of the test Redis and a list to name each key prefix handed
    out in (else None and the list): every prefix's keys are deleted, the client closed, on
    exit."""
    prefixes: list[str] = []
    client = new_redis() if kind == "redis" else None
    try:
        yield client, prefixes
    finally:
        if client is not None:
            for prefix in prefixes:
                await drop_keys(client, prefix)
            await client.aclose()


@asynccontextmanager
async def limiter_maker(kind: str) -> AsyncIterator[MakeLimiter]:
    """Makes limiters of ``kind`` (memory, redis), each with no grants and no pauses and, unless
    asked otherwise, rebuilt (ready to admit), all released on exit: what each tier's
    ``new_limiter`` fixture yields, one kind per parameter. Redis limiters each get a key
    prefix of their own on the server at ``HERALD_TEST_REDIS_URL``, deleted on exit."""
    async with _redis_prefixes(kind) as (client, prefixes):

        async def make(*, rebuilt: bool = True) -> RateLimiter:
            limiter: RateLimiter
            if kind == "memory":
                limiter = MemoryLimiter()
            elif client is not None:
                prefixes.append(new_redis_prefix())
                # The suites' instants are made up, near 0: on the wall clock every grant
                # would be older than the rebuild, and never refunded (test_redis_limiter.py).
                limiter = RedisLimiter(client, prefix=prefixes[-1], wall_clock=lambda: 0.0)
            else:
                raise ValueError(f"no limiter of kind {kind!r}")
            if rebuilt:
                await limiter.rebuild(_no_grants)
            return limiter

        yield make


#: Long before any time the contract suite passes: shared caps first saw their server then.
_LONG_AGO = -1e9


@asynccontextmanager
async def caps_maker(kind: str) -> AsyncIterator[MakeCaps]:
    """Makes caps of ``kind`` (memory, redis), each empty and granting at once (a lease of
    ``lease_s``, 10 s unless asked): what each tier's ``new_caps`` fixture yields. Redis caps
    each get a key prefix of their own on the test Redis, deleted on exit."""
    async with _redis_prefixes(kind) as (client, prefixes):

        async def make(*, lease_s: float = 10.0) -> ConcurrencyCaps:
            if kind == "memory":
                return MemoryCaps(lease_s=lease_s)
            if client is None:
                raise ValueError(f"no caps of kind {kind!r}")
            prefixes.append(new_redis_prefix())
            caps = RedisCaps(client, prefix=prefixes[-1], lease_s=lease_s)
            # Shared caps grant nothing for one lease after they first see a server (it may
            # have lost slots still in flight): let that first sight be long ago.
            await caps.acquire([], "test", _LONG_AGO)
            return caps

        yield make


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    # Tests marked virtual_time, in any tier, run on herald.testing's virtual-time loop: their
    # waits (pauses, limit windows, backoffs, grace periods) take no real time. pytest-asyncio
    # wants a factory for every test: asyncio's own loop for all the others.
    if item.get_closest_marker("virtual_time") is not None:
        return {"virtual_time": VirtualTimeLoop}
    return {"asyncio": asyncio.new_event_loop}
