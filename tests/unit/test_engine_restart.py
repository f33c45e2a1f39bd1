"""Limits across engine restarts, over the memory and SQLite stores, on virtual time."""

from __future__ import annotations

import pytest

from tests.suites.engine_restart import EngineRestartSuite

pytestmark = pytest.mark.virtual_time


class TestEngineRestart(EngineRestartSuite):
    pass
