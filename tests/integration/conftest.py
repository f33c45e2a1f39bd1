"""The integration tier: real servers (PostgreSQL) and the real simulator over HTTP.

Its ``store`` fixture runs the shared suites of tests/suites on PostgreSQL; tests that use it
carry ``@pytest.mark.postgres``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from herald.types import Store
from tests.conftest import needs_server, opened_store


@pytest.fixture(params=["postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    needs_server(request, "postgres")
    async with opened_store(request.param, tmp_path) as opened:
        yield opened
