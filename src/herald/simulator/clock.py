"""The simulator's notion of "now", which tests can move forward.

Windows, expiries and processing times all read this clock, so a test can make 24 hours pass
by calling :meth:`SimClock.advance` instead of sleeping. It is anchored on the monotonic
clock, so a wall-clock step (NTP) can never make a rolling window run backwards.
"""

from __future__ import annotations

import time

__all__ = ["SimClock"]


class SimClock:
    def __init__(self, start: float | None = None) -> None:
        self._wall0 = time.time() if start is None else start
        self._mono0 = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        """Unix time in seconds, as the simulated platforms see it."""
        return self._wall0 + (time.monotonic() - self._mono0) + self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the simulator clock only moves forward")
        self._offset += seconds
        return self.now()
