"""The engine: dispatcher, queue, workers and writer, started and stopped as one.

Lifecycle of :meth:`Engine.run`:

1. register in the store's engine registry (:mod:`herald.engine.keeper`: its heartbeat lets
   other engines give back its claims within seconds if it dies);
2. recover deliveries left claimed by a previous run (all of them when this engine has the
   store to itself, else only those whose lease ran out);
3. rebuild the limiter from what the store says was sent within the rules' reach, so that a
   restart never grants a fresh quota (:mod:`herald.limits.replay`; an in-memory limiter on
   the first run only, a shared one when Redis lost it: :mod:`herald.engine.limiter_guard`);
4. run the writer, the workers, the dispatcher, the lease keeper and the limiter's guard;
5. on :meth:`request_stop` (SIGINT/SIGTERM at the CLI) or, in burst mode, once nothing is left
   to do: stop claiming, let in-flight requests finish within ``shutdown_grace_s``, hand every
   other claimed delivery back to the store, flush the writer, leave the registry. Nothing is
   lost: what was on the wire when time ran out becomes ``unconfirmed`` and is looked up before
   any resend.

The store going away does not stop it (:mod:`herald.engine.health`): every step tries again
after a back-off, and :attr:`Engine.ready` is false meanwhile. A task that fails otherwise is
a bug, and stops the engine with its error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from herald.caps.claims import cap_limits
from herald.caps.memory import MemoryCaps
from herald.config import Settings
from herald.domain import Job, Platform, new_id
from herald.engine.admission import Admission
from herald.engine.caps_gate import CapsGate
from herald.engine.dispatcher import Dispatcher, InFlight
from herald.engine.grants import Grants
from herald.engine.health import StoreHealth
from herald.engine.keeper import LeaseKeeper
from herald.engine.limiter_guard import LimiterGuard
from herald.engine.metrics import Metrics
from herald.engine.outcomes import Outcomes
from herald.engine.parking import ParkedChannels
from herald.engine.pauses import Pauses
from herald.engine.policy import Policy
from herald.engine.worker import WorkerContext, WorkerPool
from herald.engine.writer import TransitionWriter
from herald.errors import LimiterUnavailable, StoreUnavailable
from herald.limits.memory import MemoryLimiter
from herald.limits.replay import restore
from herald.limits.rules import LimitRule, default_rules
from herald.queues.memory import MemoryQueue
from herald.states import DeliveryState
from herald.timing import SystemClock
from herald.types import (
    Clock,
    ConcurrencyCaps,
    Connector,
    CredentialResolver,
    EngineInfo,
    EngineStore,
    JobQueue,
    RateLimiter,
)
from herald.wakeup import wait_first

__all__ = ["Engine"]

log = logging.getLogger("herald.engine")

T = TypeVar("T")


class Engine:
    """``credentials`` is required: the resolver decides where secrets come from (``env:``,
    ``file:``, ``vault:``...), and a default that knew only some schemes would quietly park
    every channel using another. ``clock`` is the system's unless a test brings its own."""

    def __init__(
        self,
        settings: Settings,
        store: EngineStore,
        connectors: Mapping[Platform, Connector],
        *,
        credentials: CredentialResolver,
        limiter: RateLimiter | None = None,
        caps: ConcurrencyCaps | None = None,
        queue: JobQueue | None = None,
        metrics: Metrics | None = None,
        rules: Mapping[Platform, tuple[LimitRule, ...]] | None = None,
        exclusive: bool = False,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics or Metrics()
        self.exclusive = exclusive  # no other engine uses this store: every claim is stale
        self.clock = clock or SystemClock()
        self._connectors = connectors
        self._queue = queue or MemoryQueue()
        self._in_flight = InFlight()
        self.health = StoreHealth(settings.engine, self.metrics, self.clock, rng)
        self._writer = TransitionWriter(store, health=self.health)
        self._stopping = asyncio.Event()
        self._event_listeners: list[Callable[[], None]] = []
        self._rules = rules or default_rules(settings)
        self._limiter = LimiterGuard(
            limiter or MemoryLimiter(),
            self._replay_sent,
            health=self.health,
        )
        self._rng = rng
        self._policy = Policy(settings.engine, rng)
        self.identity = EngineInfo(
            new_id("eng"), socket.gethostname(), os.getpid(), started_at=self.clock.now()
        )
        self.dispatcher = Dispatcher(
            store,
            self._queue,
            self._in_flight,
            settings.engine,
            self.metrics,
            clock=self.clock,
            health=self.health,
            engine_id=self.identity.id,
        )
        self.keeper = LeaseKeeper(
            store, self.identity, self._in_flight, self.health, wake=self.dispatcher.notify
        )
        self.caps = self._caps_gate(caps)
        self.pool = self._workers(credentials)

    def _caps_gate(self, caps: ConcurrencyCaps | None) -> CapsGate:
        """The caps wider than one process: shared ones (``caps``) ask again after
        ``limits.cap_recheck_s``, in-memory ones are woken by their own releases."""
        limits = self.settings.limits
        return CapsGate(
            caps or MemoryCaps(lease_s=limits.cap_lease_s),
            cap_limits(self.settings),
            self.clock,
            holder=self.identity.id,
            recheck_s=None if caps is None else limits.cap_recheck_s,
            unavailable_wait_s=limits.unavailable_retry_s,
        )

    def _workers(self, credentials: CredentialResolver) -> WorkerPool:
        """The worker pool and the parts it orchestrates, wired to this engine."""
        hold_s = self.settings.engine.hold_s
        parked = ParkedChannels(self.store, credentials, self._events_recorded)
        grants = Grants(
            self._limiter,
            self._rules,
            self.metrics,
            self.clock,
            hold_s=hold_s,
            unavailable_wait_s=self.settings.limits.unavailable_retry_s,
        )
        pauses = Pauses(self._limiter, self.settings.engine, self.metrics, self.clock, self._rng)
        outcomes = Outcomes(
            self._writer,
            self._limiter,
            parked,
            self.metrics,
            wake=self.dispatcher.notify,
            events_recorded=self._events_recorded,
        )
        context = WorkerContext(
            queue=self._queue,
            connectors=self._connectors,
            concurrency={p: self.settings.platform(p).concurrency for p in self._connectors},
            credentials=credentials,
            admission=Admission(self._policy, grants, parked, self.clock, pauses),
            caps=self.caps,
            grants=grants,
            pauses=pauses,
            policy=self._policy,
            writer=self._writer,
            outcomes=outcomes,
            metrics=self.metrics,
            clock=self.clock,
            finish=self._finish,
        )
        return WorkerPool(context)

    # -- control ----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Begin a graceful stop; :meth:`run` returns once it is complete."""
        self._stopping.set()

    def notify(self, at: datetime | None = None) -> None:
        """Deliveries were added or rescheduled in this process: claim them on time."""
        self.dispatcher.notify(at)

    def on_events(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever this engine records webhook events (the webhook sender's
        wake-up: it never has to poll for them)."""
        self._event_listeners.append(listener)

    def _events_recorded(self) -> None:
        for listener in self._event_listeners:
            listener()

    @property
    def ready(self) -> bool:
        """Running, its store answers and its limiter can be trusted: what ``/readyz``
        reports."""
        return self.health.ready and not self._limiter.lost

    @property
    def writes(self) -> int:
        return self._writer.batches

    @property
    def in_flight(self) -> int:
        return self._in_flight.count

    async def is_idle(self, horizon_s: float = 0.0) -> bool:
        """Nothing held in memory and nothing due within ``horizon_s`` (0: nothing at all)."""
        if self._in_flight.count:
            return False
        if horizon_s <= 0:
            return await self.store.next_due_at() is None
        return not await self._due_within(horizon_s)

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self, *, burst: bool = False, burst_horizon_s: float = 60.0) -> None:
        """Publish until stopped.

        With ``burst``, stop once nothing is in flight and nothing is due within
        ``burst_horizon_s`` (retries after short backoffs included): a cron-style drain.
        """
        try:
            await self._start()
        except (StoreUnavailable, LimiterUnavailable):
            log.info("engine.stopped", extra={"started": False})  # stopped while it waited
            return
        tasks = {
            asyncio.create_task(self._writer.run(), name="herald-writer"),
            asyncio.create_task(self.pool.run(), name="herald-workers"),
            asyncio.create_task(self.dispatcher.run(self._stopping), name="herald-dispatcher"),
            asyncio.create_task(self.keeper.run(self._stopping), name="herald-leases"),
            asyncio.create_task(self._limiter.run(self._stopping), name="herald-limits"),
            asyncio.create_task(self.caps.run(), name="herald-caps"),  # renews until drained
        }
        if burst:
            tasks.add(
                asyncio.create_task(self._stop_when_idle(burst_horizon_s), name="herald-burst")
            )
        self.health.start()
        log.info(
            "engine.started",
            extra={"burst": burst, "exclusive": self.exclusive, "engine_id": self.identity.id},
        )
        stop_waiter = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({stop_waiter, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            crashed = [t for t in done if t is not stop_waiter and t.exception() is not None]
            self._stopping.set()
            self.health.running = False
            await self._shutdown(tasks)
            if crashed:
                raise crashed[0].exception()  # type: ignore[misc]
        finally:
            self.health.running = False
            stop_waiter.cancel()
            for task in tasks:
                task.cancel()
        log.info("engine.stopped")

    async def _start(self) -> None:
        """Register, recover what a previous run left, restore the limiter: each step tried
        again while the store is away (:class:`StoreUnavailable` once a stop is requested)."""
        await self._until_answered("start", self.keeper.register)
        recovered = await self._until_answered(
            "start",
            lambda: self.store.recover_expired_leases(self.clock.now(), every=self.exclusive),
        )
        if recovered:
            log.warning("engine.recovered", extra={"deliveries": recovered})
        await self._limiter.restore(self._stopping)

    async def _until_answered(self, task: str, call: Callable[[], Awaitable[T]]) -> T:
        return await self.health.until_answered(task, call, stopping=self._stopping)

    async def _replay_sent(self, limiter: RateLimiter) -> int | None:
        """Rebuild ``limiter`` from what was sent within the rules' reach, if it needs it (an
        in-memory limiter once: later runs of this engine keep the limiter they had)."""
        now = self.clock.now()
        return await restore(limiter, self.store, self._connectors, self._rules, now)

    async def _shutdown(self, tasks: set[asyncio.Task[None]]) -> None:
        by_name = {t.get_name(): t for t in tasks}
        dispatcher = by_name["herald-dispatcher"]
        if not dispatcher.done():
            await dispatcher
        leftovers = [(job, 0.0) for job in await self._queue.close()]
        grace_s = self.settings.engine.shutdown_grace_s
        held = await self.pool.drain(grace_s)
        await self._hand_back(leftovers + held, within_s=grace_s)
        for name in ("herald-leases", "herald-burst", "herald-limits", "herald-caps"):
            if name in by_name:
                by_name[name].cancel()
        workers = by_name["herald-workers"]
        await asyncio.gather(workers, return_exceptions=True)
        await self._writer.close(grace_s)
        await asyncio.gather(by_name["herald-writer"], return_exceptions=True)
        try:
            await self.health.until_answered("stop", self.keeper.deregister, within_s=grace_s)
        except StoreUnavailable as exc:
            # Its row stays: other engines take it for dead once it stops beating.
            log.error("engine.leave_failed", extra={"error": str(exc)})

    async def _finish(self, job: Job) -> None:
        self._in_flight.done(job)
        await self._queue.ack(job)
        self.metrics.in_flight.set(self._in_flight.count)
        self.metrics.queue_depth.set(self._queue.depth())

    async def _hand_back(self, waiting: list[tuple[Job, float]], *, within_s: float) -> None:
        """Give every job still held back to the store, each due again after its delay.

        A stop cannot wait for the store for ever: if it stays away for ``within_s``, the jobs
        are let go as they are, and released later by another engine once this one stops
        beating, by their leases, or by the next start of an engine owning the store."""
        try:
            await self.health.until_answered(
                "stop", lambda: self._release(waiting), within_s=within_s
            )
        except StoreUnavailable as exc:
            log.error("engine.release_failed", extra={"error": str(exc), "held": len(waiting)})
        finally:
            for job, _ in waiting:
                await self._finish(job)

    async def _release(self, waiting: list[tuple[Job, float]]) -> None:
        now = self.clock.now()
        # Unsent jobs are released; those with a request on the wire are abandoned (their
        # sends recorded, their deliveries looked up before any resend).
        sending = [job.delivery.state is DeliveryState.PUBLISHING for job, _ in waiting]
        done = await self.store.apply([self._policy.hand_back(j, now, d) for j, d in waiting])
        # A release refused: the job's publishing was being written as the stop came, and may
        # be in the store although nothing left. Look it up rather than guess.
        unsure = [
            job
            for (job, _), sent, ok in zip(waiting, sending, done, strict=True)
            if not (ok or sent)
        ]
        if unsure:
            await self.store.apply([self._policy.abandoned(job, now) for job in unsure])
        released = sum(ok and not sent for sent, ok in zip(sending, done, strict=True))
        unconfirmed = sum(sending) + len(unsure)
        log.info("engine.released", extra={"released": released, "unconfirmed": unconfirmed})

    async def _due_within(self, horizon_s: float) -> bool:
        next_due = await self.store.next_due_at()
        return next_due is not None and next_due <= self.clock.now() + timedelta(seconds=horizon_s)

    async def _stop_when_idle(self, horizon_s: float) -> None:
        changed = self._in_flight.subscribe()
        backoff = self.health.backoff()
        while True:
            changed.clear()
            try:
                idle = await self.is_idle(horizon_s)
            except StoreUnavailable as exc:
                self.health.failed("burst", exc)
                await wait_first(self._stopping, within_s=backoff.next_s())
                continue
            backoff.reset()
            # Only stop on a quiet read: a job claimed and finished while the store answered
            # (the read may have seen it claimed, so not due) leaves the count at 0 but sets
            # ``changed``; its hand-back may be due in a moment, so read again.
            if idle and not changed.is_set():
                log.info("engine.idle")
                self._stopping.set()
                return
            await wait_first(changed, self._stopping, within_s=self.settings.engine.idle_recheck_s)
