"""Dead engines' claims recovered by another engine, on PostgreSQL
(tests/suites/engine_heartbeat.py)."""

from __future__ import annotations

import pytest

from tests.suites.engine_heartbeat import EngineHeartbeatSuite

pytestmark = pytest.mark.postgres


class TestEngineHeartbeatOnPostgres(EngineHeartbeatSuite):
    pass
