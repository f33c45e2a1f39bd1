"""Shared fixtures: stores for the contract suite, settings for engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald.stores.memory import MemoryStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store

STORE_KINDS = ["memory", "sqlite"]


@pytest.fixture(params=STORE_KINDS)
async def store(request, tmp_path) -> AsyncIterator[Store]:
    kind = request.param
    if kind == "memory":
        s: Store = MemoryStore()
    else:
        s = SQLiteStore(tmp_path / "herald.db", synchronous="NORMAL")
    await s.open()
    try:
        yield s
    finally:
        await s.close()
