"""Fixtures of the end-to-end tier: a database URL, a store opened on it, the simulator.

``database_url`` is the one switch between back ends. The end-to-end tier runs on PostgreSQL,
the store of multi-machine deployments, in a schema of its own dropped after each test; the
API tests (tests/api) and the pipeline tests cover SQLite.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald.bootstrap import open_store
from herald.config import Settings
from herald.types import Store
from tests.conftest import PG_URL


@pytest.fixture
def database_url(pg_schema) -> str:
    return f"{PG_URL}?schema={pg_schema}"


@pytest.fixture
async def acceptance_store(database_url) -> AsyncIterator[Store]:
    store = open_store(Settings(database_url=database_url, engine={"sqlite_synchronous": "NORMAL"}))
    await store.open()
    yield store
    await store.close()
