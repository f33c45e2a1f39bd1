"""Fixtures of the end-to-end tier: a database URL, a store opened on it, the simulator.

``database_url`` is the one switch between back ends: the PostgreSQL store plugs in through
``herald.bootstrap.open_store``, so running these tests on PostgreSQL is a one-line change here
(return the ``postgresql://`` URL of the test database, e.g. from ``HERALD_TEST_POSTGRES_URL``,
instead of the SQLite file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald.bootstrap import open_store
from herald.config import Settings
from herald.types import Store


@pytest.fixture
def database_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'herald.db'}"


@pytest.fixture
async def acceptance_store(database_url) -> AsyncIterator[Store]:
    store = open_store(Settings(database_url=database_url, engine={"sqlite_synchronous": "NORMAL"}))
    await store.open()
    yield store
    await store.close()
