"""Publish times: a UTC instant, or a local wall time in an IANA zone, stored as UTC.

Daylight-saving rules (documented in docs/architecture.md, tested in tests/unit/test_timing.py):

- **Gap** (the wall time does not exist, e.g. 02:30 when clocks jump from 02:00 to 03:00):
  an error naming the gap, unless the caller passes ``on_gap="shift"``; then the time moves
  forward by the length of the gap (02:30 becomes 03:30), as a person setting a clock would.
- **Fold** (the wall time happens twice, e.g. 01:30 when clocks go back from 02:00 to 01:00):
  the first occurrence (the earlier instant), unless the caller passes ``on_fold="later"``.

And the time now: :class:`SystemClock`, the machine's clocks behind the
:class:`~herald.types.Clock` the engine reads (tests give it virtual time instead).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from herald.errors import NonexistentLocalTime, ScheduleError, TimeInPast, UnknownTimeZone

__all__ = ["LocalTime", "SystemClock", "check_not_past", "resolve", "to_utc", "zone"]

OnGap = Literal["error", "shift"]
OnFold = Literal["earlier", "later"]


#: Files of the zone database that are not zones a schedule should name: ``Factory`` (no
#: offset at all), ``localtime`` and ``posixrules`` (whatever the machine says), and the
#: ``right/`` (leap seconds counted) and ``posix/`` copies of every zone.
_NOT_ZONES = frozenset({"Factory", "localtime", "posixrules"})
_NOT_ZONE_PREFIXES = ("right/", "posix/")


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`UnknownTimeZone` if there is none, or if the name is a
    file of the zone database rather than a zone (see ``_NOT_ZONES``)."""
    if not name or len(name) > 64 or name != name.strip() or name.startswith("/") or ".." in name:
        raise UnknownTimeZone(f"unknown time zone {name[:64]!r}", field="timezone")
    if name in _NOT_ZONES or name.startswith(_NOT_ZONE_PREFIXES):
        raise UnknownTimeZone(
            f"{name!r} is not a time zone to schedule in: give a zone such as Europe/Paris",
            field="timezone",
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Europe" is a folder
        raise UnknownTimeZone(f"unknown time zone {name!r}", field="timezone") from exc


@dataclass(frozen=True, slots=True)
class LocalTime:
    """A wall-clock time in a named zone, as a person would write it."""

    wall: datetime  # naive
    timezone: str


def _round_trips(aware: datetime, wall: datetime) -> bool:
    back = aware.astimezone(UTC).astimezone(aware.tzinfo)
    return back.replace(tzinfo=None) == wall


def resolve(local: LocalTime, *, on_gap: OnGap = "error", on_fold: OnFold = "earlier") -> datetime:
    """The UTC instant of ``local``, applying the gap and fold rules above."""
    if local.wall.tzinfo is not None:
        raise ScheduleError("a local time must not carry a UTC offset", field="local_time")
    tz = zone(local.timezone)
    first = local.wall.replace(tzinfo=tz, fold=0)
    second = local.wall.replace(tzinfo=tz, fold=1)
    if _round_trips(first, local.wall):
        chosen = second if on_fold == "later" and _round_trips(second, local.wall) else first
        return chosen.astimezone(UTC)
    # Not a real wall time: inside a gap. fold=0 uses the offset before the transition, so
    # converting it lands after the gap, shifted by exactly the gap's length.
    if on_gap == "shift":
        return first.astimezone(UTC)
    gap = (first.utcoffset() or timedelta()) - (second.utcoffset() or timedelta())
    minutes = abs(int(gap.total_seconds() // 60))
    raise NonexistentLocalTime(
        f"{local.wall.isoformat(timespec='minutes')} does not exist in {local.timezone}: "
        f"clocks skip {minutes} minutes there (daylight saving); pick another time "
        "or ask to shift it forward",
        field="local_time",
    )


def to_utc(instant: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is refused rather than guessed."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ScheduleError(
            "a time without a UTC offset is ambiguous: give an offset or a time zone",
            field="scheduled_at",
        )
    return instant.astimezone(UTC)


def check_not_past(instant: datetime, *, now: datetime, grace: timedelta) -> None:
    """Refuse a publish time further in the past than ``grace``."""
    if instant < now - grace:
        late = (now - instant).total_seconds()
        raise TimeInPast(
            f"the publish time is {late:.0f} s in the past "
            f"(allowed: {grace.total_seconds():.0f} s)",
            field="scheduled_at",
        )


class SystemClock:
    """Implements :class:`herald.types.Clock` with the machine's clocks."""

    __slots__ = ()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        # perf_counter: the finest monotonic clock, as the publish-duration histogram was timed.
        return time.perf_counter()
