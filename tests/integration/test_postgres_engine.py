"""The engine on an in-memory platform, over PostgreSQL (tests/suites/engine.py)."""

from __future__ import annotations

import pytest

from tests.suites.engine import EngineSuite

pytestmark = pytest.mark.postgres


class TestEngineOnPostgres(EngineSuite):
    pass
