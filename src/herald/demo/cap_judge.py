"""Cap violations, judged from the platforms' side: the most requests the simulator saw in
flight at once, per channel, per app and per platform, against the configured caps.

Each :class:`~herald.simulator.RequestRecord` carries when the request arrived and when it was
answered (or given up). A request is in flight over ``[at, ended)``: one that ends at the very
instant another arrives does not overlap it. Seen from the platform, a request is in flight
for less time than Herald holds its slots (it arrives after the slot was taken, and is
answered before the slot is freed), so a correct Herald never shows a violation here. A
request the simulator holds after Herald gave up on it (a hang fault) would stay in flight on
the platform's side: with ``gave_up_s``, the client's timeout per platform, a request counts as
over when the client's timeout closed it, which is when Herald freed its slots.

Per process caps (``concurrency``) are not judged: the platform cannot tell processes apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from herald.caps.claims import CapLimits, CapScope, cap_key
from herald.domain import Platform
from herald.simulator import RequestRecord

__all__ = ["CapReport", "cap_violations", "most_in_flight"]

Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class CapReport:
    """``violations``: request arrivals that put more in flight on a cap than it allows;
    ``most``: the most in flight at once, per ``platform:scope`` (over every subject)."""

    violations: int = 0
    most: dict[str, int] = field(default_factory=dict)


def _sweep(intervals: Iterable[Interval], limit: int | None) -> tuple[int, int]:
    """The most in flight at once over ``intervals``, and how many arrivals passed ``limit``."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    # At equal instants the -1 (an end) sorts first: no overlap at a shared boundary.
    current = most = over = 0
    for _, step in events:
        current += step
        most = max(most, current)
        if step > 0 and limit is not None and current > limit:
            over += 1
    return most, over


def most_in_flight(intervals: Iterable[Interval]) -> int:
    """The most intervals ``[start, end)`` that overlap at one instant."""
    return _sweep(intervals, None)[0]


def _groups(
    records: Iterable[RequestRecord], gave_up_s: Mapping[Platform, float]
) -> dict[tuple[Platform, CapScope, str], list[Interval]]:
    groups: dict[tuple[Platform, CapScope, str], list[Interval]] = defaultdict(list)
    for record in records:
        if record.ended is None:
            continue  # recorded by a simulator that kept no end: not judged
        timeout_s = gave_up_s.get(record.platform)
        ended = record.ended if timeout_s is None else min(record.ended, record.at + timeout_s)
        span = (record.at, ended)
        platform = record.platform
        groups[(platform, "cluster", cap_key(platform, "cluster", ""))].append(span)
        groups[(platform, "app", cap_key(platform, "app", ""))].append(span)
        if record.account is not None:
            key = cap_key(platform, "channel", record.account)
            groups[(platform, "channel", key)].append(span)
    return groups


def cap_violations(
    records: Iterable[RequestRecord],
    limits: Mapping[Platform, CapLimits],
    gave_up_s: Mapping[Platform, float] | None = None,
) -> CapReport:
    """Judge ``records`` against each platform's caps (a platform missing from ``limits``,
    or a scope without a cap, is measured but never violated); ``gave_up_s``: the client's
    timeout per platform (see the module's doc)."""
    violations = 0
    most: dict[str, int] = {}
    for (platform, scope, _), intervals in _groups(records, gave_up_s or {}).items():
        cap: int | None = getattr(limits.get(platform, CapLimits()), scope)
        peak, over = _sweep(intervals, cap)
        violations += over
        name = f"{platform.value}:{scope}"
        most[name] = max(most.get(name, 0), peak)
    return CapReport(violations, dict(sorted(most.items())))
