"""How much of each limit rule its busiest key has used: ``herald_quota_used{platform,rule}``.

The memory limiter reads its own state at scrape time. The shared (Redis) limiter does not
scan Redis on a scrape: its keys are one per rule and channel (thousands), so a scrape would
cost as many reads. Each admission's script already reads every key it grants, and returns
what that key then holds; :class:`SeenUsage` keeps the last figure per key, and a scrape takes
the largest per rule. A figure stands for as long as the grants behind it can still count (a
rolling window's span, until its day reopens, or while a pacing's arrival time lies ahead),
then it is dropped: what a process exports is what its own admissions last saw, and the
largest over the workers (``max by (platform, rule)``) is the fleet's busiest key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from herald.limits.rules import CalendarQuota, LimitClaim, LimitRule, Pacing
from herald.timing import zone

__all__ = ["SeenUsage", "where"]


def where(key: str, rule: LimitRule) -> tuple[str, str]:
    """(platform, rule name) of a limit key (``platform:rule:subject``: see
    :func:`herald.limits.rules.limit_key`) and its rule."""
    return key.partition(":")[0], rule.name


class SeenUsage:
    """The units each key held after the admissions this process made."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[LimitRule, float, float]] = {}  # key: (rule, used, at)

    def note(self, claims: Sequence[LimitClaim], used: Sequence[float], at: float) -> None:
        for claim, units in zip(claims, used, strict=False):
            self._seen[claim.key] = (claim.rule, units, at)

    def busiest(self, now: float) -> dict[tuple[str, str], float]:
        """Per (platform, rule name), the largest figure still standing; forgets the rest."""
        found: dict[tuple[str, str], float] = {}
        for key, (rule, used, at) in list(self._seen.items()):
            left = _standing(rule, used, at, now)
            if left <= 0:
                del self._seen[key]
                continue
            place = where(key, rule)
            found[place] = max(found.get(place, 0.0), left)
        return found


def _standing(rule: LimitRule, used: float, at: float, now: float) -> float:
    """What of ``used``, seen at ``at``, can still count at ``now`` (0: nothing)."""
    algorithm = rule.algorithm
    if isinstance(algorithm, Pacing):
        return max(0.0, used - (now - at) * algorithm.rate_per_s)  # the arrival time passes
    if isinstance(algorithm, CalendarQuota):
        tz = zone(algorithm.timezone)
        day = datetime.fromtimestamp(at, tz).date() + timedelta(days=1)
        reopens = datetime.combine(day, datetime.min.time(), tz).timestamp() + algorithm.margin_s
        return used if now < reopens else 0.0
    return used if now < at + algorithm.window_s + algorithm.margin_s else 0.0
