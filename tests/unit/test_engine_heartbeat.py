"""Dead engines' claims recovered by another engine, on the memory and SQLite stores, on
virtual time (tests/suites/engine_heartbeat.py)."""

from __future__ import annotations

import pytest

from tests.suites.engine_heartbeat import EngineHeartbeatSuite

pytestmark = pytest.mark.virtual_time


class TestEngineHeartbeat(EngineHeartbeatSuite):
    pass
