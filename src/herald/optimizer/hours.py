"""Hour of week: the model's one input, counted in the channel's own time zone.

Hour 0 is Monday 00:00 local time, hour 167.99 is Sunday 23:59. Audiences keep local hours,
so a post's instant is converted to the channel's zone first; a wall-clock hour that a DST
change repeats or skips is still the hour the audience saw on its clocks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["HOURS_PER_DAY", "HOURS_PER_WEEK", "from_weekday_hour", "hour_of_week"]

HOURS_PER_DAY = 24
HOURS_PER_WEEK = 168


def hour_of_week(moment: datetime, zone: ZoneInfo) -> float:
    """Hours since Monday 00:00 of ``moment`` in ``zone`` (a naive ``moment`` is taken as
    already local to ``zone``)."""
    local = moment.astimezone(zone) if moment.tzinfo is not None else moment
    return local.weekday() * HOURS_PER_DAY + local.hour + local.minute / 60 + local.second / 3600


def from_weekday_hour(
    weekday: int, hour: float, *, weekday_one: Literal["monday", "sunday"] = "monday"
) -> float:
    """Hour of week from a weekday numbered 1-7 and a local hour in [0, 24).

    Exports number weekdays either way (ISO 8601 starts on Monday; Facebook's and many
    spreadsheets' start on Sunday), so the caller says which day is 1.
    """
    if not 1 <= weekday <= 7:
        raise ValueError(f"weekday {weekday} is not in 1-7")
    if not 0 <= hour < HOURS_PER_DAY:
        raise ValueError(f"hour {hour} is not in [0, 24)")
    monday_based = weekday - 1 if weekday_one == "monday" else (weekday - 2) % 7
    return monday_based * HOURS_PER_DAY + hour
