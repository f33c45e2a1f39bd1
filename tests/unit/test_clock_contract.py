"""The Clock contract on the system clock (real time) and on the virtual clock, on the
VirtualTimeLoop it reads (tests/suites/clock_contract.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from herald.testing import VirtualTimeLoop
from herald.timing import SystemClock
from herald.types import Clock
from tests.suites.clock_contract import ClockContract


@dataclass
class ClockRig:
    clock: Clock
    nap_s: float
    tolerance_s: float


class TestSystemClock(ClockContract):
    @pytest.fixture
    def clock_rig(self):
        return ClockRig(SystemClock(), nap_s=0.05, tolerance_s=0.01)


# The loop is chosen per test, from its marks, before any fixture runs: one class per loop.
@pytest.mark.virtual_time
class TestVirtualClock(ClockContract):
    @pytest.fixture
    async def clock_rig(self):
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        return ClockRig(loop.clock, nap_s=3600.0, tolerance_s=1e-5)
