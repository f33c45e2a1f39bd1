"""Limits across engine restarts, over the memory and SQLite stores."""

from __future__ import annotations

from tests.suites.engine_restart import EngineRestartSuite


class TestEngineRestart(EngineRestartSuite):
    pass
