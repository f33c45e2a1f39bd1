"""Shared fixtures: stores for the contract suite, settings for engine tests.

PostgreSQL tests use the server at ``HERALD_TEST_DATABASE_URL`` (default: the local one that
``scripts/services.sh`` starts). Each test gets a schema of its own, dropped afterwards, so
tests are independent and several pytest processes can share one server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from herald.stores.memory import MemoryStore
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store

STORE_KINDS = ["memory", "sqlite", "postgres"]
PG_URL = os.environ.get("HERALD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def new_schema() -> str:
    return f"herald_test_{secrets.token_hex(6)}"


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh, unique schema name; the schema (created by whoever uses it) is dropped after."""
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


@pytest.fixture(params=STORE_KINDS)
async def store(request, tmp_path) -> AsyncIterator[Store]:
    kind = request.param
    if kind == "postgres":
        stores = PgStores(new_schema())
        try:
            yield await stores.open()
        finally:
            await stores.close()
            await drop_schema(stores.schema)
        return
    if kind == "memory":
        s: Store = MemoryStore()
    else:
        s = SQLiteStore(tmp_path / "herald.db", synchronous="NORMAL")
    await s.open()
    try:
        yield s
    finally:
        await s.close()
