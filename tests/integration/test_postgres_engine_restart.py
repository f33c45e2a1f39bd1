"""Limits across engine restarts, over PostgreSQL (tests/suites/engine_restart.py)."""

from __future__ import annotations

import pytest

from tests.suites.engine_restart import EngineRestartSuite

pytestmark = pytest.mark.postgres


class TestEngineRestartOnPostgres(EngineRestartSuite):
    pass
