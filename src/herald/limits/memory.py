"""The in-process rate limiter: exact sliding logs, calendar counters and GCRA, in memory.

It serves one engine process (the embedded deployment). Engines on several machines share
limits through a networked limiter implementing the same Protocol.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from herald.limits.rules import CalendarQuota, LimitClaim, LimitRule, Pacing, RollingWindow
from herald.limits.usage import where
from herald.timing import zone
from herald.types import EarlierGrants

__all__ = ["Gcra", "MemoryLimiter"]

_EPSILON_S = 1e-9  # float noise in time arithmetic is not a wait


class _SlidingLog:
    """Grants still inside the window, oldest first, with their running total."""

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0

    def prune(self, horizon: float) -> None:
        entries = self.entries
        while entries and entries[0][0] <= horizon:
            self.total -= entries.popleft()[1]

    def wait(self, rule: RollingWindow, cost: int, now: float) -> float:
        span = rule.window_s + rule.margin_s
        self.prune(now - span)
        excess = self.total + cost - rule.limit
        if excess <= 0:
            return 0.0
        # The wait ends when enough of the oldest grants have left the window.
        freed = 0
        for granted_at, used in self.entries:
            freed += used
            if freed >= excess:
                return granted_at + span - now
        return math.inf  # pragma: no cover - cost > limit is refused before this

    def record(self, cost: int, at: float) -> None:
        entries = self.entries
        index = len(entries)
        # Live grants arrive in time order; an earlier one (the wall clock stepped back, or a
        # replay after live grants) is slotted in so that the oldest stays first.
        while index and entries[index - 1][0] > at:
            index -= 1
        entries.insert(index, (at, cost))
        self.total += cost

    def refund(self, cost: int, granted_at: float) -> None:
        # Recent grants are at the right end: search from there.
        for index in range(len(self.entries) - 1, -1, -1):
            if self.entries[index] == (granted_at, cost):
                del self.entries[index]
                self.total -= cost
                return


class _DayCounter:
    """Units used per calendar day in one zone."""

    __slots__ = ("days",)

    def __init__(self) -> None:
        self.days: dict[date, int] = {}

    @staticmethod
    def _days(rule: CalendarQuota, now: float) -> set[date]:
        # A grant near midnight counts against both days: it may arrive, or the platform's
        # clock may read, on the other side of the reset.
        tz = zone(rule.timezone)
        return {
            datetime.fromtimestamp(now + shift, tz).date()
            for shift in (-rule.margin_s, 0.0, rule.margin_s)
        }

    def wait(self, rule: CalendarQuota, cost: int, now: float) -> float:
        full = [d for d in self._days(rule, now) if self.days.get(d, 0) + cost > rule.limit]
        if not full:
            return 0.0
        tz = zone(rule.timezone)
        reopen = max(
            datetime.combine(d + timedelta(days=1), datetime.min.time(), tz).timestamp()
            for d in full
        )
        return max(reopen + rule.margin_s - now, 1e-3)

    def record(self, rule: CalendarQuota, cost: int, now: float) -> None:
        days = self._days(rule, now)
        for d in days:
            self.days[d] = self.days.get(d, 0) + cost
        oldest = min(days)
        for d in [d for d in self.days if d < oldest]:
            del self.days[d]

    def used(self, rule: CalendarQuota, now: float) -> int:
        """The fullest of the days a grant now would count against."""
        return max(self.days.get(d, 0) for d in self._days(rule, now))

    def refund(self, rule: CalendarQuota, cost: int, granted_at: float) -> None:
        for d in self._days(rule, granted_at):
            if d in self.days:
                self.days[d] = max(0, self.days[d] - cost)


class Gcra:
    """One key's pacing (GCRA): its theoretical arrival time, and the wait a request of
    ``cost`` would have. The limiter's, and the API's per-key request budgets
    (:mod:`herald.api.key_limits`)."""

    __slots__ = ("tat",)

    def __init__(self) -> None:
        self.tat = 0.0  # theoretical arrival time of the next request

    def wait(self, rule: Pacing, cost: int, now: float) -> float:
        interval = 1.0 / rule.rate_per_s
        new_tat = max(self.tat, now) + cost * interval
        allowed_at = new_tat - rule.burst * interval
        return max(0.0, allowed_at - now)

    def record(self, rule: Pacing, cost: int, now: float) -> None:
        self.tat = max(self.tat, now) + cost * (1.0 / rule.rate_per_s)


_State = _SlidingLog | _DayCounter | Gcra


class MemoryLimiter:
    """Implements :class:`herald.types.RateLimiter` for one process."""

    def __init__(self) -> None:
        self._states: dict[str, _State] = {}
        self._rules: dict[str, LimitRule] = {}  # each key's rule, for quota_use
        self._blocks: dict[str, float] = {}
        self._rebuilt = False

    def _state(self, claim: LimitClaim) -> _State:
        state = self._states.get(claim.key)
        if state is None:
            algorithm = claim.rule.algorithm
            if isinstance(algorithm, RollingWindow):
                state = _SlidingLog()
            elif isinstance(algorithm, CalendarQuota):
                state = _DayCounter()
            else:
                state = Gcra()
            self._states[claim.key] = state
            self._rules[claim.key] = claim.rule
        return state

    @staticmethod
    def _capacity(claim: LimitClaim) -> float:
        algorithm = claim.rule.algorithm
        return algorithm.burst if isinstance(algorithm, Pacing) else algorithm.limit

    def _wait_one(self, claim: LimitClaim, now: float) -> float:
        if claim.cost > self._capacity(claim):
            return math.inf
        state, algorithm = self._state(claim), claim.rule.algorithm
        if isinstance(state, _SlidingLog) and isinstance(algorithm, RollingWindow):
            return state.wait(algorithm, claim.cost, now)
        if isinstance(state, _DayCounter) and isinstance(algorithm, CalendarQuota):
            return state.wait(algorithm, claim.cost, now)
        if isinstance(state, Gcra) and isinstance(algorithm, Pacing):
            return state.wait(algorithm, claim.cost, now)
        raise TypeError(f"limit key {claim.key!r} is used by rules of different kinds")

    def _record(self, claim: LimitClaim, now: float) -> None:
        state, algorithm = self._state(claim), claim.rule.algorithm
        if isinstance(state, _SlidingLog):
            state.record(claim.cost, now)
        elif isinstance(state, _DayCounter) and isinstance(algorithm, CalendarQuota):
            state.record(algorithm, claim.cost, now)
        elif isinstance(state, Gcra) and isinstance(algorithm, Pacing):
            state.record(algorithm, claim.cost, now)

    async def reserve(
        self, claims: Sequence[LimitClaim], now: float, *, pauses: Sequence[str] = ()
    ) -> float:
        wait = max((self._blocks.get(key, 0.0) - now for key in pauses), default=0.0)
        for claim in claims:
            wait = max(wait, self._wait_one(claim, now))
        if wait > _EPSILON_S:
            return wait
        for claim in claims:
            self._record(claim, now)
        return 0.0

    async def refund(
        self, claims: Sequence[LimitClaim], granted_at: float, *, unsent: bool = False
    ) -> None:
        for claim in claims:
            if not (unsent or claim.rule.refundable):
                continue
            state, algorithm = self._states.get(claim.key), claim.rule.algorithm
            if isinstance(state, _SlidingLog):
                state.refund(claim.cost, granted_at)
            elif isinstance(state, _DayCounter) and isinstance(algorithm, CalendarQuota):
                state.refund(algorithm, claim.cost, granted_at)

    async def replay(self, claims: Sequence[LimitClaim], granted_at: float) -> None:
        for claim in claims:
            self._record(claim, granted_at)

    async def rebuild(self, earlier: EarlierGrants) -> int | None:
        # Its state lives as long as the process: once filled, it never needs it again.
        if self._rebuilt:
            return None
        grants = await earlier()
        for granted_at, claims in grants:
            await self.replay(claims, granted_at)
        self._rebuilt = True
        return len(grants)

    async def block(self, key: str, until: float) -> None:
        self._blocks[key] = max(until, self._blocks.get(key, 0.0))

    def quota_use(self, now: float) -> dict[tuple[str, str], float]:
        # Read at scrape time, one step per key: the state is this process's own. A rolling
        # window's log forgets what left it, as its next admission would.
        found: dict[tuple[str, str], float] = {}
        for key, state in self._states.items():
            rule = self._rules[key]
            used = _used(state, rule, now)
            place = where(key, rule)
            found[place] = max(found.get(place, 0.0), used)
        return found


def _used(state: _State, rule: LimitRule, now: float) -> float:
    algorithm = rule.algorithm
    if isinstance(state, _SlidingLog) and isinstance(algorithm, RollingWindow):
        state.prune(now - algorithm.window_s - algorithm.margin_s)
        return float(state.total)
    if isinstance(state, _DayCounter) and isinstance(algorithm, CalendarQuota):
        return float(state.used(algorithm, now))
    if isinstance(state, Gcra) and isinstance(algorithm, Pacing):
        return max(0.0, state.tat - now) * algorithm.rate_per_s  # the burst spent ahead of now
    return 0.0
