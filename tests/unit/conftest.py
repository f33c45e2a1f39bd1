"""The unit tier: in-process and in-memory, no server of any kind.

Its ``store`` fixture runs the shared suites on the memory and SQLite stores. A unit test that
tried to reach PostgreSQL fails at once rather than quietly depending on a running server.
Tests marked ``virtual_time`` run on :class:`herald.testing.VirtualTimeLoop`: their waits
(pauses, limit windows, backoffs, grace periods) take no real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import pytest

from herald.testing import VirtualTimeLoop
from herald.types import Store
from tests.conftest import opened_store

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


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with opened_store(request.param, tmp_path) as opened:
        yield opened


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    # pytest-asyncio wants a factory for every test under this folder: asyncio's own loop
    # for all but the marked ones.
    if item.get_closest_marker("virtual_time") is not None:
        return {"virtual_time": VirtualTimeLoop}
    return {"asyncio": asyncio.new_event_loop}
