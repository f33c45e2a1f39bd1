"""Due times: the three forms, the grace and horizon, and free posting slots."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from herald.config import ApiSettings
from herald.domain import PostingSlot
from herald.errors import ScheduleError
from herald.service.scheduling import AtInstant, AtLocal, NextFreeSlot, Scheduler
from herald.testing import channel

NOW = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)  # a Monday


class Slots:
    """A stand-in for the two store reads slot searches use."""

    def __init__(self, slots, busy=()):
        self.slots = slots
        self.busy = set(busy)
        self.reads: list[tuple[datetime, datetime]] = []

    async def get_schedule(self, channel_id):
        return list(self.slots)

    async def busy_times(self, channel_id, start, end):
        self.reads.append((start, end))
        return {t for t in self.busy if start <= t < end}


def scheduler(source, **api) -> Scheduler:
    return Scheduler(source, ApiSettings(**api), clock=lambda: NOW)


async def test_instants_and_local_times():
    s = scheduler(Slots([]))
    paris, tokyo = channel(timezone="Europe/Paris"), channel(timezone="Asia/Tokyo")
    book = s.book()
    at = await s.due_times(AtInstant(NOW + timedelta(hours=1)), [paris, tokyo], book)
    assert at == [NOW + timedelta(hours=1)] * 2
    own = await s.due_times(AtLocal(datetime(2030, 1, 8, 9, 0)), [paris, tokyo], book)
    assert own == [datetime(2030, 1, 8, 8, 0, tzinfo=UTC), datetime(2030, 1, 8, 0, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("when", "field"),
    [
        (AtInstant(NOW - timedelta(seconds=301)), "scheduled_at"),
        (AtInstant(NOW + timedelta(days=731)), "scheduled_at"),
        (AtLocal(datetime(2030, 3, 31, 2, 30), "Europe/Paris"), "local_time"),
        (AtLocal(datetime(2030, 1, 8, 9, 0), "Nowhere/City"), "timezone"),
        (AtLocal(datetime(1, 1, 1, 0, 0), "America/New_York"), "local_time"),
    ],
)
async def test_times_out_of_bounds(when, field):
    s = scheduler(Slots([]))
    with pytest.raises(ScheduleError) as info:
        await s.due_times(when, [channel()], s.book())
    assert info.value.field == field


async def test_free_slots_skip_busy_ones_and_are_handed_out_once():
    monday_9 = datetime(2030, 1, 14, 8, 0, tzinfo=UTC)  # 09:00 Paris, next Monday
    source = Slots([PostingSlot(0, time(9, 0)), PostingSlot(0, time(8, 0))], busy={monday_9})
    s = scheduler(source)
    book = s.book()
    paris = channel(timezone="Europe/Paris")
    first = await book.next_free(paris)
    second = await book.next_free(paris)
    third = await book.next_free(paris)
    assert first == datetime(2030, 1, 14, 7, 0, tzinfo=UTC)  # today's slots have passed
    assert second == datetime(2030, 1, 21, 7, 0, tzinfo=UTC)  # 09:00 on the 14th is taken
    assert third == datetime(2030, 1, 21, 8, 0, tzinfo=UTC)
    assert await book.next_free(paris, ignore=None) == datetime(2030, 1, 28, 7, 0, tzinfo=UTC)
    moved = await s.book().next_free(paris, ignore=monday_9)
    assert moved == datetime(2030, 1, 14, 7, 0, tzinfo=UTC)


async def test_no_slots_or_no_free_slot_within_the_horizon():
    s = scheduler(Slots([]))
    with pytest.raises(ScheduleError, match="no posting slots"):
        await s.due_times(NextFreeSlot(), [channel()], s.book())
    weekly = Slots([PostingSlot(2, time(10, 0))])
    short = scheduler(weekly, max_horizon_days=14)
    book = short.book()
    paris = channel(timezone="Europe/Paris")
    await book.next_free(paris)
    await book.next_free(paris)
    with pytest.raises(ScheduleError, match="no free posting slot in the next 14 days"):
        await book.next_free(paris)


async def test_a_search_resumed_after_its_lock_sees_what_others_took_meanwhile():
    """An import stores its free slots batch by batch, letting the locks go in between: the
    next batch's search must not hand out a slot another request took meanwhile, though the
    book had read that week as free. It reads again from the day it had reached, not from
    now (the days before are full)."""
    daily = [PostingSlot(d, time(h, 0)) for d in range(7) for h in (9, 12, 15)]
    source = Slots(daily)
    book = scheduler(source).book()
    utc = channel(timezone="UTC")
    given = [await book.next_free(utc) for _ in range(5)]  # Mon 15; Tue 9, 12, 15; Wed 9
    assert given[-1] == datetime(2030, 1, 9, 9, 0, tzinfo=UTC)
    taken_meanwhile = datetime(2030, 1, 9, 12, 0, tzinfo=UTC)
    source.busy |= {*given, taken_meanwhile}  # the batch stored; another request took one
    book.forget_busy()
    source.reads.clear()
    assert await book.next_free(utc) == datetime(2030, 1, 9, 15, 0, tzinfo=UTC)
    assert [start for start, _ in source.reads] == [given[-1] - timedelta(days=2)]
