"""The integration tier: real servers (PostgreSQL, Redis) and the real simulator over HTTP.

Its ``store`` fixture runs the shared suites of tests/suites on PostgreSQL, its
``new_limiter`` fixture on the Redis limiter and its ``queue`` fixture on Redis Streams;
tests that use them carry ``@pytest.mark.postgres`` or ``@pytest.mark.redis``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from herald.types import JobQueue, Store
from tests.conftest import (
    MakeCaps,
    MakeLimiter,
    caps_maker,
    limiter_maker,
    needs_server,
    opened_queue,
    opened_store,
)
from tests.integration.regions_rig import Opened, TwoRegions, opened_regions, two_regions


@pytest.fixture(params=["postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    needs_server(request, "postgres")
    async with opened_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["redis"])
async def new_limiter(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    needs_server(request, "redis")
    async with limiter_maker(request.param) as make:
        yield make


@pytest.fixture(params=["redis"])
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[JobQueue]:
    needs_server(request, "redis")
    async with opened_queue(request.param) as opened:
        yield opened


@pytest.fixture(params=["redis"])
async def new_caps(request: pytest.FixtureRequest) -> AsyncIterator[MakeCaps]:
    needs_server(request, "redis")
    async with caps_maker(request.param) as make:
        yield make


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for tests that talk HTTP to a simulator."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def two(pg_schema: str) -> AsyncIterator[TwoRegions]:
    """A deployment in two regions on two PostgreSQL servers (tests/integration/regions_rig.py)."""
    async with two_regions(pg_schema) as found:
        yield found


@pytest.fixture
async def opened(two: TwoRegions) -> AsyncIterator[Opened]:
    """Both regions' stores and the directory, open."""
    async with opened_regions(two) as found:
        yield found
