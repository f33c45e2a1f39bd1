"""The dispatcher: claims due deliveries in batches and hands them to the workers.

It sleeps until the earliest due time the store knows, or until something wakes it (new posts,
a retry written for later, room freed in memory). It never polls on a fixed beat; the one
bounded sleep, ``idle_recheck_s``, only catches work written by *other* processes (and bounds
how long a few places freed in a full engine wait for more before they are claimed for). While
the store is away it tries again after a growing back-off (:mod:`herald.engine.health`).

In a dispatcher process (``herald dispatcher``, a :class:`Handoff`) the queue is a broker and
the claims are handed off: each is leased ``handoff_s``, renewed by the dispatcher's keeper
while its message waits unread, until a worker adopts it (:mod:`herald.engine.intake`). A
message the broker loses therefore costs one lease: the claim lapses, any keeper releases it,
and it is claimed and sent again (the sweeper is the lease). The dispatcher claims while fewer
than ``max_queued`` jobs wait unread, so that a backlog stays in the store, where due order and
expiry are kept. The broker gives no signal when it is read, so while it is
full the dispatcher asks for its depth every ``depth_recheck_s``. While the broker is away,
claimed jobs are put again every ``retry_s`` (their leases lapse if that takes too long).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from herald.config import EngineSettings
from herald.domain import Delivery, Job
from herald.engine.health import StoreHealth
from herald.engine.metrics import Metrics
from herald.errors import QueueUnavailable, StoreUnavailable
from herald.types import Clock, EngineStore, JobQueue
from herald.wakeup import wait_first

__all__ = ["Dispatcher", "Handoff", "InFlight"]

log = logging.getLogger("herald.dispatcher")


class InFlight:
    """Claimed deliveries this engine holds, counted by claim token for lease renewal."""

    def __init__(self) -> None:
        self._tokens: Counter[str] = Counter()
        self.count = 0
        self._claiming = 0
        self._listeners: list[asyncio.Event] = []

    @property
    def busy(self) -> bool:
        """Jobs held, or a claim being taken whose jobs are not counted yet."""
        return self.count > 0 or self._claiming > 0

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """A claim round in flight: the store may have taken the claims before they are
        counted, so a reader deciding "nothing left" must not decide during it."""
        self._claiming += 1
        self._changed()
        try:
            yield
        finally:
            self._claiming -= 1
            self._changed()

    def subscribe(self) -> asyncio.Event:
        """An event set at every change of the count; each listener clears its own."""
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    def _changed(self) -> None:
        for event in self._listeners:
            event.set()

    def add(self, jobs: Iterable[Job]) -> None:
        for job in jobs:
            self._tokens[job.claim_token] += 1
            self.count += 1
        self._changed()

    def done(self, job: Job) -> None:
        if self._tokens[job.claim_token] <= 0:
            # Finishing a job twice would make the engine believe work is still held forever.
            raise RuntimeError(f"delivery {job.delivery.id} finished twice")
        self._tokens[job.claim_token] -= 1
        if self._tokens[job.claim_token] <= 0:
            del self._tokens[job.claim_token]
        self.count -= 1
        self._changed()

    def tokens(self) -> list[str]:
        return list(self._tokens)


@dataclass(frozen=True, slots=True)
class Handoff:
    """Claims handed to other processes through a broker (see the module's doc)."""

    lease_s: float
    max_queued: int
    depth_recheck_s: float
    retry_s: float


class Dispatcher:
    def __init__(
        self,
        store: EngineStore,
        queue: JobQueue,
        in_flight: InFlight,
        settings: EngineSettings,
        metrics: Metrics,
        *,
        clock: Clock,
        health: StoreHealth,
        engine_id: str | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        self._store = store
        self._handoff = handoff
        self._health = health
        self._engine_id = engine_id  # recorded with its claims
        self._clock = clock
        self._queue = queue
        self._in_flight = in_flight
        self._settings = settings
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._room = in_flight.subscribe()
        self._wake_at: datetime | None = None
        self._stopping = asyncio.Event()  # run()'s
        self._refill_at = min(settings.claim_batch, max(1, settings.max_in_flight // 2))
        self._few_free_since: float | None = None  # fewer than _refill_at places free since
        self.rounds = 0  # claim round trips, for benchmarks

    def notify(self, at: datetime | None = None) -> None:
        """New work is due at ``at`` (now if None): claim then, or now if that is earlier."""
        if at is not None and (self._wake_at is None or at < self._wake_at):
            self._wake_at = at
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        self._stopping = stopping
        backoff = self._health.backoff()
        while not stopping.is_set():
            try:
                await self._round(stopping)
            except StoreUnavailable as exc:
                self._health.failed("dispatcher", exc)
                # Not woken early by new work: claiming is what cannot be done.
                await wait_first(stopping, within_s=backoff.next_s())
                continue
            backoff.reset()

    async def _round(self, stopping: asyncio.Event) -> None:
        """Claim once, then wait until more may be due (not at all after a full batch)."""
        self._wake.clear()
        if self._handoff is not None:
            # One round trip a round (a round claims up to claim_batch): the figure bounds
            # what is claimed, and is the backlog this process exports for an autoscaler.
            await self._refresh_depth()
            room = self._handoff.max_queued - self._queue.depth()
            if room <= 0:
                await wait_first(stopping, within_s=self._handoff.depth_recheck_s)
                return
        else:
            room = self._settings.max_in_flight - self._in_flight.count
            # Held jobs far outnumber the lanes' slots: a place freed by one finished job is
            # not worth a claim of its own (a transaction per delivery once the engine is
            # full). Claim again once a batch's worth, or half of what may be held, is free,
            # or once places have been free for ``idle_recheck_s``: the held jobs may be those
            # of a platform whose requests hang, and another's due work must not wait on them.
            if 0 < room < self._refill_at and self._in_flight.count > 0:
                wait_s = self._few_free_s()
                if wait_s > 0:
                    self._room.clear()
                    await wait_first(self._room, stopping, within_s=wait_s)
                    return
            self._few_free_since = None
        if room <= 0:
            self._room.clear()
            await wait_first(self._room, stopping, within_s=None)
            return
        asked = min(room, self._settings.claim_batch)
        claimed = await self._claim(asked)
        self._health.answered()
        if claimed == asked:
            return  # more may be due right now
        await wait_first(self._wake, stopping, within_s=await self._idle_timeout())

    def _few_free_s(self) -> float:
        """How much longer the few places free now wait for more before they are claimed for."""
        now = self._clock.monotonic()
        if self._few_free_since is None:
            self._few_free_since = now
        return self._few_free_since + self._settings.idle_recheck_s - now

    async def _claim(self, limit: int) -> int:
        now = self._clock.now()
        lease_s = self._settings.lease_s if self._handoff is None else self._handoff.lease_s
        with self._in_flight.claiming():
            batch = await self._store.claim_due(
                now=now,
                limit=limit,
                lease_until=now + timedelta(seconds=lease_s),
                expire_before=now - timedelta(seconds=self._settings.max_lateness_s),
                engine_id=self._engine_id,
            )
            if batch.jobs and self._handoff is None:
                self._in_flight.add(batch.jobs)
        self.rounds += 1
        self._report_expired(batch.expired)
        if batch.jobs and self._handoff is not None:
            await self._hand_off(batch.jobs)
        elif batch.jobs:
            await self._queue.put(batch.jobs)
            self._metrics.claimed.inc(len(batch.jobs))
            self._metrics.queue_depth.set(self._queue.depth())
            self._metrics.in_flight.set(self._in_flight.count)
        return len(batch.jobs)

    async def _hand_off(self, jobs: list[Job]) -> None:
        assert self._handoff is not None
        while True:
            try:
                await self._queue.put(jobs)
            except QueueUnavailable as exc:
                self._metrics.broker_failed("publish")
                # Kept and put again: the store keeps their claims meanwhile (until the lease).
                log.warning("dispatcher.queue_unavailable", extra={"error": str(exc)})
                await wait_first(self._stopping, within_s=self._handoff.retry_s)
                if self._stopping.is_set():
                    # Their leases lapse within handoff_s and they are claimed again.
                    log.warning("dispatcher.handoff_dropped", extra={"jobs": len(jobs)})
                    return
            else:
                self._metrics.broker_answered()
                return

    async def _refresh_depth(self) -> None:
        try:
            await self._queue.refresh_depth()
        except QueueUnavailable as exc:
            self._metrics.broker_failed("publish")  # the depth is read from the publish side
            log.warning("dispatcher.queue_unavailable", extra={"error": str(exc)})

    def _report_expired(self, expired: list[Delivery]) -> None:
        for delivery in expired:
            self._metrics.deliveries.labels(delivery.platform.value, "expired").inc()
            log.warning(
                "delivery.expired",
                extra={
                    "delivery_id": delivery.id,
                    "post_id": delivery.post_id,
                    "channel_id": delivery.channel_id,
                    "platform": delivery.platform.value,
                    "due_at": delivery.due_at.isoformat(),
                },
            )

    async def _idle_timeout(self) -> float:
        """Seconds until the earliest known due time, capped by ``idle_recheck_s``."""
        now = self._clock.now()
        candidates = [self._settings.idle_recheck_s]
        next_due = await self._store.next_due_at()
        if next_due is not None:
            candidates.append((next_due - now).total_seconds())
        if self._wake_at is not None:
            if self._wake_at <= now:
                self._wake_at = None
                return 0.0
            candidates.append((self._wake_at - now).total_seconds())
        return max(0.0, min(candidates))
