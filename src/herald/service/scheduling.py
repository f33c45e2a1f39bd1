"""When each delivery of a post is due: the three ways a caller can say it.

- :class:`AtInstant`: a UTC instant (any offset is converted; a naive time is refused);
- :class:`AtLocal`: a wall time in an IANA zone, or in each target channel's own zone when no
  zone is given, resolved by :func:`herald.timing.resolve` (gap: error or ``shift``;
  fold: ``earlier`` or ``later``);
- :class:`NextFreeSlot`: the next weekly posting slot of each target channel (Buffer-style
  queues) that no live delivery of that channel already holds. Slots are wall times in the
  channel's zone; a slot inside a daylight-saving gap moves forward by the gap's length.

Every resolved time must lie between ``now - past_grace_s`` and ``now + max_horizon_days``.
A :class:`SlotBook` remembers the slots it handed out, so the rows of one import (or the
targets of one post) never share a slot; :meth:`Scheduler.holding` holds the channels' slot
locks from the search to the write, so two requests (in any process) never share one either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import KW_ONLY, dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal, Protocol

from herald.config import ApiSettings
from herald.domain import Channel, PostingSlot, utcnow
from herald.errors import ScheduleError
from herald.timing import LocalTime, check_not_past, resolve, to_utc, zone

__all__ = [
    "AtInstant",
    "AtLocal",
    "NextFreeSlot",
    "OnFold",
    "OnGap",
    "Scheduler",
    "SlotBook",
    "SlotSource",
    "When",
]

OnGap = Literal["error", "shift"]
OnFold = Literal["earlier", "later"]

_BUSY_WINDOW = timedelta(days=28)  # busy times are read from the store this many days at once
_REREAD_MARGIN = timedelta(days=2)  # forget_busy reads again from this long before the last slot


@dataclass(frozen=True, slots=True)
class AtInstant:
    at: datetime  # aware


@dataclass(frozen=True, slots=True)
class AtLocal:
    wall: datetime  # naive
    timezone: str | None = None  # None: each target channel's own zone
    on_gap: OnGap = "error"
    on_fold: OnFold = "earlier"


@dataclass(frozen=True, slots=True)
class NextFreeSlot:
    pass


When = AtInstant | AtLocal | NextFreeSlot


class SlotSource(Protocol):
    """The store reads slot searches need and their lock (a part of
    :class:`~herald.types.Catalog`)."""

    async def get_schedule(self, channel_id: str) -> list[PostingSlot]: ...

    async def busy_times(
        self, channel_id: str, start: datetime, end: datetime
    ) -> set[datetime]: ...

    def slot_lock(self, channel_ids: Sequence[str]) -> AbstractAsyncContextManager[None]: ...


@dataclass
class _ChannelSlots:
    by_weekday: dict[int, list[PostingSlot]]
    taken: set[datetime] = field(default_factory=set)
    read_until: datetime | None = None  # busy times are known up to here
    # Every slot before this day (offset from today) is taken or past: searches resume here,
    # so handing out n slots costs O(n), not O(n^2).
    first_day: int = 0
    last_given: datetime | None = None  # the slot handed out last (on first_day)
    # The slot instants of the day searched last (offset, instants): a search resumes on the
    # same day as the one before, and resolving a wall time in its zone is the search's cost.
    day: tuple[int, list[datetime]] | None = None

    def instants(self, offset: int, day: date, timezone: str) -> list[datetime]:
        if self.day is None or self.day[0] != offset:
            slots = self.by_weekday.get(day.weekday(), ())
            self.day = (offset, [_slot_instant(day, slot, timezone) for slot in slots])
        return self.day[1]


class SlotBook:
    """Free-slot search for one request or one import; never hands out a slot twice."""

    def __init__(
        self, store: SlotSource, *, now: datetime, horizon: timedelta, grace: timedelta
    ) -> None:
        self._store = store
        self._now = now
        self._horizon = horizon
        self._grace = grace
        self._channels: dict[str, _ChannelSlots] = {}

    async def next_free(self, channel: Channel, *, ignore: datetime | None = None) -> datetime:
        """The channel's next free slot after now; ``ignore`` is a time that does not count as
        taken (the delivery's own, when it is being moved)."""
        known = await self._known(channel)
        if not known.by_weekday:
            raise ScheduleError(
                f"channel {channel.id} has no posting slots: set them with "
                f"PUT /v1/channels/{channel.id}/schedule",
                field="next_free_slot",
            )
        local_today = self._now.astimezone(zone(channel.timezone)).date()
        start = known.first_day if ignore is None else 0
        for offset in range(start, self._horizon.days + 1):
            day = local_today + timedelta(days=offset)
            for instant in known.instants(offset, day, channel.timezone):
                if instant <= self._now or instant > self._now + self._horizon:
                    continue
                if instant != ignore and await self._is_taken(channel, known, instant):
                    continue
                known.taken.add(instant)
                if ignore is None:
                    known.first_day, known.last_given = offset, instant
                return instant
        raise ScheduleError(
            f"channel {channel.id} has no free posting slot in the next {self._horizon.days} days",
            field="next_free_slot",
        )

    def forget_busy(self) -> None:
        """Read the channels' busy times from the store again where the next search looks: a
        search that goes on after its lock was let go (an import's next batch) must see what
        others took meanwhile. It looks from the day of the slot it handed out last on (the
        days before are full), so what is known before that day stays known, and only the
        busy times from then on are read again (from two days before it: a day is at most 25
        hours, and a daylight-saving gap may put a day's slots out of order). What is known
        stays known too: a slot is freed only by a cancel or a move, which a search may miss
        without ever giving a slot twice."""
        for known in self._channels.values():
            if known.read_until is None:
                continue
            if known.last_given is None:
                known.taken, known.read_until = set(), None
            else:
                known.read_until = min(known.read_until, known.last_given - _REREAD_MARGIN)

    async def _known(self, channel: Channel) -> _ChannelSlots:
        known = self._channels.get(channel.id)
        if known is None:
            by_weekday: dict[int, list[PostingSlot]] = {}
            for slot in sorted(await self._store.get_schedule(channel.id), key=_slot_key):
                by_weekday.setdefault(slot.weekday, []).append(slot)
            known = self._channels[channel.id] = _ChannelSlots(by_weekday)
        return known

    async def _is_taken(self, channel: Channel, known: _ChannelSlots, instant: datetime) -> bool:
        while known.read_until is None or instant >= known.read_until:
            start = known.read_until or self._now - self._grace
            end = max(start, instant) + _BUSY_WINDOW
            known.taken |= await self._store.busy_times(channel.id, start, end)
            known.read_until = end
        return instant in known.taken


def _slot_key(slot: PostingSlot) -> tuple[int, int, int]:
    return (slot.weekday, slot.time.hour, slot.time.minute)


def _slot_instant(day: date, slot: PostingSlot, timezone: str) -> datetime:
    wall = datetime.combine(day, slot.time)
    return resolve(LocalTime(wall, timezone), on_gap="shift", on_fold="earlier")


@dataclass(frozen=True, slots=True)
class Scheduler:
    """Turns a :data:`When` into one due time per target channel, checked against the clock."""

    store: SlotSource
    settings: ApiSettings
    _: KW_ONLY
    clock: Callable[[], datetime] = utcnow

    @property
    def _grace(self) -> timedelta:
        return timedelta(seconds=self.settings.past_grace_s)

    @property
    def _horizon(self) -> timedelta:
        return timedelta(days=self.settings.max_horizon_days)

    def book(self) -> SlotBook:
        """A new search: make it inside :meth:`holding`, and write what it found there too."""
        return SlotBook(self.store, now=self.clock(), horizon=self._horizon, grace=self._grace)

    def holding(
        self, whens: Iterable[When], channel_ids: Iterable[str]
    ) -> AbstractAsyncContextManager[None]:
        """The slot lock of ``channel_ids`` if any of ``whens`` asks for free slots; else
        nothing to hold (a fixed time may share an instant with anything)."""
        if any(isinstance(w, NextFreeSlot) for w in whens):
            return self.store.slot_lock(sorted(set(channel_ids)))
        return nullcontext()

    async def due_times(
        self,
        when: When,
        channels: Sequence[Channel],
        book: SlotBook,
        *,
        ignore: Sequence[datetime | None] | None = None,
    ) -> list[datetime]:
        """One due time per channel, in order; :class:`ScheduleError` naming the field."""
        if isinstance(when, NextFreeSlot):
            skip = ignore or [None] * len(channels)
            return [
                await book.next_free(c, ignore=own) for c, own in zip(channels, skip, strict=True)
            ]
        if isinstance(when, AtInstant):
            return [self.check(self._instant(when.at), "scheduled_at")] * len(channels)
        if when.timezone is not None:
            at = self.check(self._local(when, when.timezone), "local_time")
            return [at] * len(channels)
        return [self.check(self._local(when, c.timezone), "local_time") for c in channels]

    def check(self, instant: datetime, field_name: str) -> datetime:
        """Refuse a time too far in the past or the future."""
        now = self.clock()
        try:
            check_not_past(instant, now=now, grace=self._grace)
        except ScheduleError as exc:
            raise ScheduleError(exc.message, field=field_name) from None
        if instant > now + self._horizon:
            raise ScheduleError(
                f"the publish time is more than {self._horizon.days} days ahead",
                field=field_name,
            )
        return instant

    @staticmethod
    def _instant(at: datetime) -> datetime:
        try:
            return to_utc(at)
        except OverflowError:
            raise ScheduleError("the publish time is out of range", field="scheduled_at") from None

    def _local(self, when: AtLocal, timezone: str) -> datetime:
        try:
            return resolve(LocalTime(when.wall, timezone), on_gap=when.on_gap, on_fold=when.on_fold)
        except ScheduleError as exc:
            field_name = exc.field if exc.field == "timezone" else "local_time"
            raise type(exc)(exc.message, field=field_name) from None
        except (OverflowError, ValueError):
            raise ScheduleError("the local time is out of range", field="local_time") from None
