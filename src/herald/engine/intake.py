"""The intake: what feeds the worker pool from the queue.

In the embedded engine the queue is in memory and every job on it is this engine's own claim:
the intake hands each one to its platform's lane as it comes.

In a worker process (``herald worker``) the queue is a broker shared with a dispatcher and
other workers, and a message is only an offer: it may be a second copy (redelivered, taken
over from a consumer that was slow rather than dead), or stale (its claim lapsed and was given
to another). The intake **adopts** the claims it takes off the broker
(:meth:`~herald.types.EngineStore.adopt`): in one round trip for every job that arrived while
the previous one was answered (group commit, as the writer does), each claim still waiting
becomes this process's, under a token of its own and a full lease that its keeper renews. The
others are acked and dropped: someone else holds them, or will claim them again. A job of
another region is never adopted (routing is the dispatcher's; this is the worker's promise).

The intake holds at most ``max_held`` jobs at once (adopted and still running, or waiting to
be adopted), and once full takes more only when half are done: the rest stays in the broker,
for other workers and for an autoscaler to see, and jobs are adopted in batches.
While the broker is away it waits ``retry_s`` and tries again; the jobs it holds carry on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from herald.domain import Job, Platform
from herald.engine.dispatcher import InFlight
from herald.engine.health import StoreHealth
from herald.engine.metrics import Metrics
from herald.errors import QueueError, QueueUnavailable, StoreUnavailable
from herald.types import EngineStore, JobQueue
from herald.wakeup import wait_first

__all__ = ["Adoption", "Intake"]

log = logging.getLogger("herald.worker")


@dataclass(frozen=True, slots=True)
class Adoption:
    """What a worker process needs to adopt the claims it takes off a broker."""

    store: EngineStore
    engine_id: str
    region: str  # the only region whose jobs it publishes
    platforms: Collection[Platform]
    max_held: int
    lease_s: float


class Intake:
    def __init__(
        self,
        queue: JobQueue,
        in_flight: InFlight,
        health: StoreHealth,
        *,
        retry_s: float,
        metrics: Metrics,
        adoption: Adoption | None = None,
    ) -> None:
        self._queue = queue
        self._metrics = metrics
        self._in_flight = in_flight
        self._health = health
        self._retry_s = retry_s
        self._adoption = adoption
        self._offered: list[Job] = []  # taken off the broker, not yet adopted
        self._arrived = asyncio.Event()
        self._room = in_flight.subscribe()
        self._message_of: dict[str, Job] = {}  # delivery id: the job as the broker sent it
        self._closed = asyncio.Event()
        self.stale = 0  # offers refused: their claims were no longer waiting

    async def run(self, submit: Callable[[Job], None]) -> None:
        """Hand jobs to ``submit`` until the queue closes."""
        if self._adoption is None:
            await self._take(submit)
            return
        adopting = asyncio.create_task(self._adopt_offers(submit), name="herald-adopt")
        taking = asyncio.create_task(self._take(self._offer), name="herald-take")
        try:
            await asyncio.wait({adopting, taking}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            taking.cancel()
            self._closed.set()
            self._arrived.set()
            await asyncio.gather(taking, return_exceptions=True)
            await adopting  # a bug in it is raised here

    def message_of(self, job: Job) -> Job:
        """The job as the queue handed it out (what its ack names), and forget it."""
        return self._message_of.pop(job.delivery.id, job)

    def take_offers(self) -> list[Job]:
        """The jobs taken off the broker and not adopted yet (at a stop: to release and ack)."""
        offered, self._offered = self._offered, []
        return offered

    def close(self) -> None:
        """Take nothing more: :meth:`run` returns (the queue is being closed too)."""
        self._closed.set()
        self._arrived.set()
        self._room.set()

    # -- taking -----------------------------------------------------------------------------
    async def _take(self, accept: Callable[[Job], None]) -> None:
        while True:
            await self._until_room()
            if self._closed.is_set():
                return
            try:
                job = await self._queue.get()
            except QueueUnavailable as exc:
                self._metrics.broker_failed("consume")
                log.warning("worker.queue_unavailable", extra={"error": str(exc)})
                await asyncio.sleep(self._retry_s)
                continue
            except QueueError:
                return
            self._metrics.broker_answered()
            accept(job)

    async def _until_room(self) -> None:
        """Once full, wait until half of what it holds is done, then take as much again: jobs
        are adopted in batches (one round trip each), not one per job that finishes."""
        if self._adoption is None:
            return  # the embedded dispatcher bounds what it claims
        most = self._adoption.max_held
        if self._held() < most:
            return
        while self._held() > most // 2:
            if self._closed.is_set():
                return
            self._room.clear()
            await self._room.wait()

    def _held(self) -> int:
        return len(self._offered) + self._in_flight.count

    def _offer(self, job: Job) -> None:
        self._offered.append(job)
        self._arrived.set()

    # -- adopting ---------------------------------------------------------------------------
    async def _adopt_offers(self, submit: Callable[[Job], None]) -> None:
        assert self._adoption is not None
        a = self._adoption
        backoff = self._health.backoff()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            if self._closed.is_set():
                return
            offers = self.take_offers()
            if not offers:
                continue
            first = _first_copies(offers)  # by position: copies may be equal jobs
            mine = [offers[i] for i in first.values() if self._ours(offers[i], a)]
            now = self._health.clock.now()
            try:
                adopted = await a.store.adopt(
                    [(j.delivery.id, j.claim_token) for j in mine],
                    engine_id=a.engine_id,
                    lease_until=now + timedelta(seconds=a.lease_s),
                )
            except StoreUnavailable as exc:
                self._health.failed("adopt", exc)
                self._offered[:0] = offers  # tried again, first, after the back-off
                await wait_first(self._closed, within_s=backoff.next_s())
                self._arrived.set()
                continue
            backoff.reset()
            self._health.answered()
            taken = [
                (j, replace(j, claim_token=adopted.claim_token))
                for j in mine
                if j.delivery.id in adopted.delivery_ids
            ]
            self._in_flight.add(job for _, job in taken)
            for message, job in taken:
                self._message_of[job.delivery.id] = message
                submit(job)
            # Refused: every other offer, second copies of an adopted one included (a broker
            # that redelivers can put two copies of one message in one batch).
            kept = {first[j.delivery.id] for j, _ in taken}
            refused = [j for i, j in enumerate(offers) if i not in kept]
            await self._drop(refused)
            self._room.set()  # what was offered is held or dropped now

    def _ours(self, job: Job, a: Adoption) -> bool:
        region = job.channel.region_or(a.region)
        if region == a.region and job.delivery.platform in a.platforms:
            return True
        # Routing put it in a stream this process reads: a dispatcher configured with another
        # default region. Never published here; its claim lapses and it is routed again.
        log.error(
            "worker.not_ours",
            extra={
                "delivery_id": job.delivery.id,
                "region": region,
                "platform": job.delivery.platform.value,
                "worker_region": a.region,
            },
        )
        return False

    async def _drop(self, refused: list[Job]) -> None:
        """Ack offers whose claims are gone: another worker adopted them first, or they lapsed
        and were claimed again (a fresh message carries the new claim)."""
        self.stale += len(refused)
        for job in refused:
            try:
                await self._queue.ack(job)
            except QueueError as exc:
                self._metrics.broker_failed("ack")
                # Unacked, it comes back after a take-over and is refused again: harmless.
                log.warning("worker.ack_failed", extra={"error": str(exc)})
        if refused:
            log.info("worker.stale_offers", extra={"jobs": len(refused)})


def _first_copies(offers: Sequence[Job]) -> dict[str, int]:
    """Where the first offer of each delivery is: two copies of one message adopted together
    would run the delivery twice in this process (the second's ``publishing`` write is
    refused, but not before it took slots and gave back the first's)."""
    first: dict[str, int] = {}
    for index, job in enumerate(offers):
        first.setdefault(job.delivery.id, index)
    return first
