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

The same engine runs in one of three roles (:data:`Role`): ``all`` (``herald run``, ``herald
serve``: everything in one process, the queue in memory), ``dispatcher`` (claims and hands the
jobs to a broker: no workers, no limiter) and ``worker`` (takes jobs off a broker, adopts their
claims and publishes them: no dispatcher). See docs/architecture.md, "Distributed mode".
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from herald.caps.claims import cap_limits
from herald.caps.memory import MemoryCaps
from herald.config import Settings
from herald.domain import Attempt, Job, Platform, new_id
from herald.engine.admission import Admission
from herald.engine.caps_gate import CapsGate
from herald.engine.dispatcher import Dispatcher, Handoff, InFlight
from herald.engine.grants import Grants
from herald.engine.health import StoreHealth
from herald.engine.intake import Adoption, Intake
from herald.engine.keeper import LeaseKeeper
from herald.engine.limiter_guard import LimiterGuard
from herald.engine.metrics import Metrics, QuotaGauges
from herald.engine.outcomes import Outcomes
from herald.engine.parking import ParkedChannels
from herald.engine.pauses import Pauses
from herald.engine.policy import Policy
from herald.engine.versions import VersionWatch
from herald.engine.worker import WorkerContext, WorkerPool
from herald.engine.writer import TransitionWriter
from herald.errors import LimiterUnavailable, QueueError, StoreUnavailable
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

__all__ = ["Engine", "Role"]

log = logging.getLogger("herald.engine")

T = TypeVar("T")

#: What one engine process does (see the module's doc).
Role = Literal["all", "dispatcher", "worker"]


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
        role: Role = "all",
        priced_by: Mapping[Platform, Connector] | None = None,
        versions: VersionWatch | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
        self.store = store
        self.metrics = metrics or Metrics(role=role)
        self.exclusive = exclusive  # no other engine uses this store: every claim is stale
        self.clock = clock or SystemClock()
        self._connectors = connectors
        # What prices a replayed send when the limiter is rebuilt: every platform the store
        # holds sends of, not only those this engine publishes to. A shared limiter is rebuilt
        # whole, by whichever worker sees it lost first.
        self._priced_by = priced_by or connectors
        self._queue = queue or MemoryQueue()
        self._in_flight = InFlight()
        self.health = StoreHealth(settings.engine, self.metrics, self.clock, rng)
        self._writer = TransitionWriter(store, health=self.health)
        # The versions this engine's connectors speak: told of by them, warned of by it.
        self.versions = versions or VersionWatch(settings, self.metrics)
        self._stopping = asyncio.Event()
        self._event_listeners: list[Callable[[], None]] = []
        self._rules = rules or default_rules(settings)
        self._limits_in_memory = limiter is None or isinstance(limiter, MemoryLimiter)
        self._limiter = LimiterGuard(
            limiter or MemoryLimiter(),
            self._replay_sent,
            health=self.health,
            metrics=self.metrics,
        )
        if role != "dispatcher":
            published = {p: self._rules[p] for p in connectors if p in self._rules}
            QuotaGauges(published, lambda: self._limiter.quota_use(self.clock.time())).register(
                self.metrics.registry
            )
        self._rng = rng
        self._policy = Policy(settings.engine, rng)
        self.identity = EngineInfo(
            new_id("eng"), socket.gethostname(), os.getpid(), started_at=self.clock.now()
        )
        broker = settings.broker
        handoff = Handoff(
            broker.handoff_s, broker.max_queued, broker.depth_recheck_s, broker.retry_s
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
            handoff=handoff if role == "dispatcher" else None,
        )
        self.keeper = LeaseKeeper(
            store,
            self.identity,
            self._in_flight,
            self.health,
            self.metrics,
            wake=self.dispatcher.notify,
            # A dispatcher's claims lapse after handoff_s: it looks for lapsed ones that often.
            lease_s=min(settings.engine.lease_s, broker.handoff_s)
            if role == "dispatcher"
            else settings.engine.lease_s,
            held=self._unread_tokens if role == "dispatcher" else None,
        )
        self.intake = Intake(
            self._queue,
            self._in_flight,
            self.health,
            retry_s=broker.retry_s,
            metrics=self.metrics,
            adoption=self._adoption() if role == "worker" else None,
        )
        self.caps = self._caps_gate(caps)
        self.pool = self._workers(credentials)

    def _unread_tokens(self) -> set[str]:
        return {job.claim_token for job in self._queue.unread()}

    def _adoption(self) -> Adoption:
        platforms = tuple(self._connectors)
        return Adoption(
            self.store,
            self.identity.id,
            self.settings.region,
            platforms,
            max_held=self.settings.worker_prefetch(platforms),
            lease_s=self.settings.engine.lease_s,
        )

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
            paused_here=None if self._limits_in_memory else self._limiter.paused_here_s,
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
            intake=self.intake,
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
            attempts=self._attempts_of,
            admit_together=not self._limits_in_memory,
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
        reports (a dispatcher has no limiter)."""
        if self.role == "dispatcher":
            return self.health.ready
        return self.health.ready and not self._limiter.lost

    @property
    def writes(self) -> int:
        return self._writer.batches

    @property
    def in_flight(self) -> int:
        return self._in_flight.count

    async def is_idle(self, horizon_s: float = 0.0) -> bool:
        """Nothing held in memory and nothing due within ``horizon_s`` (0: nothing at all)."""
        if self._in_flight.busy:
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
        tasks = {asyncio.create_task(self.keeper.run(self._stopping), name="herald-leases")}
        if self.role != "worker":
            run = self.dispatcher.run(self._stopping)
            tasks.add(asyncio.create_task(run, name="herald-dispatcher"))
        if self.role != "dispatcher":
            tasks |= {
                asyncio.create_task(self._writer.run(), name="herald-writer"),
                asyncio.create_task(self.pool.run(), name="herald-workers"),
                asyncio.create_task(self._limiter.run(self._stopping), name="herald-limits"),
                asyncio.create_task(self.caps.run(), name="herald-caps"),  # renews until drained
                asyncio.create_task(self._watch_versions(), name="herald-versions"),
            }
        if burst:
            tasks.add(
                asyncio.create_task(self._stop_when_idle(burst_horizon_s), name="herald-burst")
            )
        self.health.start()
        log.info(
            "engine.started",
            extra={
                "burst": burst,
                "exclusive": self.exclusive,
                "engine_id": self.identity.id,
                "role": self.role,
            },
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
            self.metrics.lease_recoveries.labels("expired_lease").inc(recovered)
            log.warning("engine.recovered", extra={"deliveries": recovered})
        if self.role != "dispatcher":
            await self._limiter.restore(self._stopping)

    async def _watch_versions(self) -> None:
        await self.versions.run(self.store, self.health, self._stopping, self._events_recorded)

    async def _until_answered(self, task: str, call: Callable[[], Awaitable[T]]) -> T:
        return await self.health.until_answered(task, call, stopping=self._stopping)

    async def _replay_sent(self, limiter: RateLimiter) -> int | None:
        """Rebuild ``limiter`` from what was sent within the rules' reach, if it needs it (an
        in-memory limiter once: later runs of this engine keep the limiter they had)."""
        now = self.clock.now()
        return await restore(limiter, self.store, self._priced_by, self._rules, now)

    async def _shutdown(self, tasks: set[asyncio.Task[None]]) -> None:
        by_name = {t.get_name(): t for t in tasks}
        dispatcher = by_name.get("herald-dispatcher")
        if dispatcher is not None and not dispatcher.done():
            await dispatcher
        grace_s = self.settings.engine.shutdown_grace_s
        leftovers = [(job, 0.0) for job in await self._close_queue()]
        held = await self.pool.drain(grace_s) if self.role != "dispatcher" else []
        if self.role == "all":  # the queue's jobs are this engine's claims, held already
            held, leftovers = leftovers + held, []
        await self._hand_back(held, leftovers, within_s=grace_s)
        for name in (
            "herald-leases",
            "herald-burst",
            "herald-limits",
            "herald-caps",
            "herald-versions",
        ):
            if name in by_name:
                by_name[name].cancel()
        if self.role != "dispatcher":
            await asyncio.gather(by_name["herald-workers"], return_exceptions=True)
            await self._writer.close(grace_s)
            await asyncio.gather(by_name["herald-writer"], return_exceptions=True)
        try:
            await self.health.until_answered("stop", self.keeper.deregister, within_s=grace_s)
        except StoreUnavailable as exc:
            # Its row stays: other engines take it for dead once it stops beating.
            log.error("engine.leave_failed", extra={"error": str(exc)})

    async def _attempts_of(self, delivery_id: str) -> list[Attempt]:
        """A delivery's attempts, read again after each transient failure until the store
        answers, as the writer writes: the look-up that found nothing waits for them (a
        stop cancels it, and hands its job back still owing the look-up)."""
        return await self.health.until_answered(
            "look-up", lambda: self.store.list_attempts(delivery_id)
        )

    async def _finish(self, job: Job) -> None:
        self._in_flight.done(job)
        await self._ack(self.intake.message_of(job))
        self.metrics.in_flight.set(self._in_flight.count)
        self.metrics.queue_depth.set(self._queue.depth())

    async def _ack(self, job: Job) -> None:
        try:
            await self._queue.ack(job)
        except QueueError as exc:
            self.metrics.broker_failed("ack")
            # The outcome is in the store. The message comes back to some worker, whose
            # adoption is refused (its claim token is gone), and is acked then.
            log.warning("engine.ack_failed", extra={"error": str(exc)})

    async def _close_queue(self) -> list[Job]:
        """Close the queue; return the jobs taken off it and never started (a worker's
        intake's offers too)."""
        self.intake.close()
        try:
            unread = await self._queue.close()
        except QueueError as exc:
            # Unacked, a broker hands them to another consumer later, or their leases lapse.
            log.warning("engine.queue_close_failed", extra={"error": str(exc)})
            unread = []
        return unread + self.intake.take_offers()

    async def _hand_back(
        self,
        held: list[tuple[Job, float]],
        offered: list[tuple[Job, float]],
        *,
        within_s: float,
    ) -> None:
        """Give every job still ``held`` back to the store, each due again after its delay,
        and the claims ``offered`` and never adopted (a worker's, a dispatcher's unread).

        A stop cannot wait for the store for ever: if it stays away for ``within_s``, the jobs
        are let go as they are, and released later by another engine once this one stops
        beating, by their leases, or by the next start of an engine owning the store."""
        waiting = held + offered
        try:
            await self.health.until_answered(
                "stop", lambda: self._release(waiting), within_s=within_s
            )
        except StoreUnavailable as exc:
            log.error("engine.release_failed", extra={"error": str(exc), "held": len(waiting)})
        finally:
            for job, _ in held:
                await self._finish(job)
            for job, _ in offered:
                await self._ack(job)

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
