"""The simulator's own limit counters: deliberately naive, so they are obviously right.

They do not share code with :mod:`herald.limits` on purpose: the simulator is the judge of
Herald's limiter, and a bug shared by both would hide itself.

- :class:`RollingCounter`: the timestamps of admitted units in a deque; those older than the
  window fall off the left. "At most ``limit`` in any ``window_s`` seconds".
- :class:`DailyCounter`: a dict calendar day -> units, the day taken in a time zone.

Only admitted units are recorded: a refused request leaves the counters untouched.
:func:`admit` checks several counters and records into all of them, or into none.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

__all__ = ["Counter", "DailyCounter", "RollingCounter", "admit"]


class RollingCounter:
    def __init__(self, name: str, limit: int, window_s: float) -> None:
        self.name = name
        self.limit = limit
        self.window_s = window_s
        self._stamps: deque[float] = deque()

    def _prune(self, now: float) -> None:
        edge = now - self.window_s
        stamps = self._stamps
        while stamps and stamps[0] <= edge:
            stamps.popleft()

    def used(self, now: float) -> int:
        self._prune(now)
        return len(self._stamps)

    def fits(self, now: float, cost: int = 1) -> bool:
        return self.used(now) + cost <= self.limit

    def take(self, now: float, cost: int = 1) -> None:
        if cost == 1:
            self._stamps.append(now)
        else:
            self._stamps.extend([now] * cost)

    def used_since(self, now: float, since: float) -> int:
        self._prune(now)
        return sum(1 for stamp in self._stamps if stamp >= since)

    def regain_s(self, now: float) -> float:
        """Seconds until the oldest unit leaves the window (0 if there is room now)."""
        self._prune(now)
        if len(self._stamps) < self.limit:
            return 0.0
        return max(0.0, self._stamps[0] + self.window_s - now)

    def percent(self, now: float) -> int:
        # Floored: 100 only once the window is really full, never a request early.
        return math.floor(100 * self.used(now) / self.limit)


class DailyCounter:
    def __init__(self, name: str, limit: int, timezone: str) -> None:
        self.name = name
        self.limit = limit
        self.zone = ZoneInfo(timezone)
        self._days: dict[date, int] = {}

    def day(self, now: float) -> date:
        return datetime.fromtimestamp(now, self.zone).date()

    def used(self, now: float) -> int:
        return self._days.get(self.day(now), 0)

    def fits(self, now: float, cost: int = 1) -> bool:
        return self.used(now) + cost <= self.limit

    def take(self, now: float, cost: int = 1) -> None:
        today = self.day(now)
        self._days[today] = self._days.get(today, 0) + cost


Counter = RollingCounter | DailyCounter


def admit(now: float, claims: Sequence[tuple[Counter, int]]) -> Counter | None:
    """Record every claim, or none: return the first counter that has no room."""
    for counter, cost in claims:
        if not counter.fits(now, cost):
            return counter
    for counter, cost in claims:
        counter.take(now, cost)
    return None
