"""The unit tier: in process, no database or broker server (an HTTP server a test starts in
its own process, on loopback, is fine: that is the test's fake, not a dependency).

Its ``store`` fixture runs the shared suites on the memory and SQLite stores, its ``queue`` and
``new_limiter`` fixtures on the memory queue and limiter. A unit test that tried to reach
PostgreSQL or Redis fails at once rather than quietly depending on a running server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import pytest
import redis.asyncio.connection

from herald.types import JobQueue, Store
from tests.conftest import (
    MakeCaps,
    MakeLimiter,
    caps_maker,
    limiter_maker,
    opened_queue,
    opened_store,
)

SERVER_MARKERS = ("postgres", "redis", "rabbitmq")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in Path(item.path).parents:
            continue
        marked = [m for m in SERVER_MARKERS if item.get_closest_marker(m) is not None]
        if marked:
            raise pytest.UsageError(
                f"{item.nodeid} needs a {marked[0]} server: it belongs in tests/integration"
            )


@pytest.fixture(autouse=True)
def _no_database_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("a unit test must not connect to PostgreSQL (tests/integration)")

    monkeypatch.setattr(asyncpg, "connect", refuse)
    monkeypatch.setattr(asyncpg, "create_pool", refuse)

    def refuse_redis(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("a unit test must not connect to Redis (tests/integration)")

    monkeypatch.setattr(redis.asyncio.connection.AbstractConnection, "connect", refuse_redis)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with opened_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["memory"])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[JobQueue]:
    async with opened_queue(request.param) as opened:
        yield opened


@pytest.fixture(params=["memory"])
async def new_limiter(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    async with limiter_maker(request.param) as make:
        yield make


@pytest.fixture(params=["memory"])
async def new_caps(request: pytest.FixtureRequest) -> AsyncIterator[MakeCaps]:
    async with caps_maker(request.param) as make:
        yield make
