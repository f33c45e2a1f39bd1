"""The worker pool: takes claimed deliveries off the queue and carries each one through.

Per delivery, in its platform's lane (:mod:`.lane`): admission (:mod:`.admission`: expired?
valid? parked? within limits?), then either a look-up (when the last request had an unknown
outcome) or a publish, then the outcome decided by :mod:`.policy` and made so by
:mod:`.outcomes`. The limiter's grants are kept by :mod:`.grants`. The ``publishing`` state is
committed before a request leaves, which is what lets a crash never cause a duplicate.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from herald.domain import Attempt, Job, Platform, Transition
from herald.engine.admission import Admission, Go, Hold
from herald.engine.caps_gate import CapsGate
from herald.engine.grants import Grants
from herald.engine.intake import Intake
from herald.engine.lane import Lane, Slot
from herald.engine.metrics import Metrics
from herald.engine.outcomes import Outcomes, log_fields
from herald.engine.pauses import Pauses
from herald.engine.policy import NOT_SENT, UNCERTAIN_SENDS, Decision, Policy
from herald.engine.writer import TransitionWriter
from herald.errors import AuthExpired
from herald.limits.replay import gives_back, reached
from herald.states import DeliveryState
from herald.types import Clock, Connector, CredentialResolver, Published, PublishRequest

__all__ = ["WorkerContext", "WorkerPool"]

log = logging.getLogger("herald.worker")


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What the workers use, wired by the engine."""

    intake: Intake
    connectors: Mapping[Platform, Connector]
    concurrency: Mapping[Platform, int]
    credentials: CredentialResolver
    admission: Admission
    caps: CapsGate
    grants: Grants
    pauses: Pauses
    policy: Policy
    writer: TransitionWriter
    outcomes: Outcomes
    metrics: Metrics
    clock: Clock
    finish: Callable[[Job], Awaitable[None]]  # the job is over for this engine
    # A delivery's attempts: read only when a look-up finds nothing (see Policy.after_check).
    attempts: Callable[[str], Awaitable[list[Attempt]]]
    # Admit a lane's ready jobs together: their limiter (or caps) calls cost round trips.
    admit_together: bool = False


class WorkerPool:
    def __init__(self, context: WorkerContext) -> None:
        self._e = context
        self._stopping = False
        self._jobs: dict[str, Job] = {}  # every job currently executing
        self._lane_tasks: list[asyncio.Task[None]] = []
        self.lanes = {
            platform: Lane(
                platform.value,
                context.concurrency[platform],
                self._admit,
                self._execute,
                self._admission_failed,
                together=context.admit_together,
            )
            for platform in context.connectors
        }

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        """Feed the lanes from the intake until the queue closes, the lanes running alongside.

        A lane that dies takes the pool down with it, and the engine with the pool: failing
        loudly beats holding its deliveries' leases, unserved, for as long as the process lives.
        """
        self._lane_tasks = [
            asyncio.create_task(lane.run(), name=f"herald-lane-{lane.name}")
            for lane in self.lanes.values()
        ]
        feeding = asyncio.create_task(self._e.intake.run(self._submit), name="herald-feed")
        try:
            await asyncio.gather(feeding, *self._lane_tasks)
        finally:
            feeding.cancel()
            for task in self._lane_tasks:
                task.cancel()

    def _submit(self, job: Job) -> None:
        self.lanes[job.delivery.platform].submit(job)

    def stop_taking(self) -> None:
        self._stopping = True
        for lane in self.lanes.values():
            lane.stop()

    async def drain(self, grace_s: float) -> list[tuple[Job, float]]:
        """Let in-flight requests finish (up to ``grace_s``); return every job still held,
        each with the delay after which it was to run, for the engine to hand back."""
        self.stop_taking()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        # A lane may be admitting one last job: let it finish so no task starts after this.
        if self._lane_tasks:
            _, stuck = await asyncio.wait(self._lane_tasks, timeout=grace_s)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*self._lane_tasks, return_exceptions=True)
        tasks = {t for lane in self.lanes.values() for t in lane.tasks}
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        waiting: list[tuple[Job, float]] = []
        for lane in self.lanes.values():
            waiting += lane.take_waiting()
        waiting += [(job, 0.0) for job in self._jobs.values()]
        return waiting

    # -- admission --------------------------------------------------------------------------
    async def _admit(self, job: Job) -> bool:
        """True: send now. False: the job was held in its lane, or settled and finished.

        Its concurrency slots are taken first, as the lane's own: a limiter's grant is never
        spent waiting for a slot (see :mod:`.lane`)."""
        lane = self.lanes[job.delivery.platform]
        full = await self._e.caps.take(job)
        if full is not None:
            ticket = lane.defer(job, full.wait_s)
            self._e.caps.wait(full, functools.partial(lane.wake_one, ticket))
            return False
        connector = self._e.connectors[job.delivery.platform]
        try:
            verdict = await self._e.admission.admit(job, connector, may_hold=self._may_hold)
        except BaseException:
            await self._e.caps.release(job)
            raise
        if isinstance(verdict, Go):
            return True
        await self._e.caps.release(job)
        if isinstance(verdict, Hold):
            self.lanes[job.delivery.platform].defer(job, verdict.wait_s)
            return False
        await self._e.outcomes.carry_out(job, verdict)
        await self._e.finish(job)
        return False

    def _may_hold(self) -> bool:
        return not self._stopping

    async def _admission_failed(self, job: Job, exc: Exception) -> None:
        log.error("delivery.admission_error", exc_info=exc, extra=log_fields(job))
        self._e.grants.drop(job)
        self._let_others_go(job)
        await self._e.finish(job)

    def _let_others_go(self, job: Job) -> None:
        """``job`` is over: if it was finding out whether a pause had ended, the jobs it held
        back try again now, and learn the answer from their own admission."""
        if self._e.pauses.release(job):
            self.lanes[job.delivery.platform].wake()

    # -- execution --------------------------------------------------------------------------
    async def _execute(self, job: Job, slot: Slot) -> None:
        self._jobs[job.delivery.id] = job
        try:
            if job.delivery.check_first:
                await self._check(job, slot)
            else:
                await self._publish(job, slot, None)
        except asyncio.CancelledError:
            raise  # drain() reports it held, and the engine hands it back
        except Exception:
            # A bug, not a platform answer. The lease and the sweeper recover the delivery;
            # if a request may have left, it is looked up before any resend.
            log.exception("delivery.worker_error", extra=log_fields(job))
        finally:
            await self._e.caps.release(job)  # every path: done, failed, cancelled
        self._jobs.pop(job.delivery.id, None)
        self._e.grants.drop(job)
        self._let_others_go(job)
        await self._e.finish(job)

    async def _request(self, job: Job) -> PublishRequest | None:
        """The request for ``job``, or None: its secrets could not be had (channel parked)."""
        try:
            secrets = await self._e.credentials.resolve(job.channel)
        except AuthExpired as exc:
            decision = self._e.policy.auth_unsent(job, exc, self._e.clock.now())
            await self._e.outcomes.record(job, decision)
            return None
        delivery = job.delivery
        return PublishRequest(
            delivery_id=delivery.id,
            channel=job.channel,
            credentials=secrets,
            content=job.content,
            attempt=delivery.attempts + 1,
            since=delivery.check_since or delivery.due_at,  # connectors widen it by clock skew
            meter=self._e.grants.meter(job),
        )

    async def _publish(self, job: Job, slot: Slot, looked_up: Attempt | None) -> None:
        request = await self._request(job)
        if request is None:
            await self._e.grants.refund(job, unsent=True)
            return
        marked = self._e.policy.publishing(job, self._e.clock.now(), looked_up=looked_up)
        if not await self._e.writer.write(marked):
            await self._e.grants.refund(job, unsent=True)
            log.info("delivery.claim_lost", extra=log_fields(job))  # cancelled or taken over
            return
        self._jobs[job.delivery.id] = _sending(job, marked)  # what a hand-back must know
        # A throttle or an outage may have paused the platform while the secrets were read and
        # the mark written: a request granted before the pause does not go out inside it.
        pause_s = await self._e.grants.paused_s(job)
        if pause_s > 0:
            await self._e.grants.refund(job, unsent=True)
            decision = self._e.policy.paused(job, self._e.clock.now(), pause_s)
            await self._e.outcomes.record(job, decision)
            return
        connector = self._e.connectors[job.delivery.platform]
        started, timer = self._e.clock.now(), self._e.clock.monotonic()
        late_s = (started - job.delivery.due_at).total_seconds()
        self._e.metrics.sent_lateness_seconds.labels(job.delivery.platform.value).observe(
            max(0.0, late_s)
        )
        try:
            result: Published | BaseException = await connector.publish(request)
        except Exception as exc:
            result = exc
        finally:
            slot.release()
        await self._e.caps.release(job)
        self._e.metrics.publish_seconds.labels(job.delivery.platform.value).observe(
            self._e.clock.monotonic() - timer
        )
        result = await self._e.pauses.observe(job, started.timestamp(), result)
        decision = self._e.policy.after_publish(job, started, self._e.clock.now(), result)
        await self._refund_unpublished(job, decision)
        await self._e.outcomes.record(job, decision)

    async def _refund_unpublished(self, job: Job, decision: Decision) -> None:
        """A request that definitely did not publish gives its units back, every one if it
        never reached the platform (a restart's replay agrees: both ask the same tests)."""
        attempt = decision.transition.attempt
        if attempt is not None and gives_back(attempt.outcome):
            await self._e.grants.refund(job, unsent=not reached(attempt.outcome))

    async def _check(self, job: Job, slot: Slot) -> None:
        request = await self._request(job)
        if request is None:
            return
        connector = self._e.connectors[job.delivery.platform]
        started = self._e.clock.now()
        try:
            found: Published | BaseException | None = await connector.find(request)
        except Exception as exc:
            found = exc
        found = await self._e.pauses.observe(job, started.timestamp(), found)
        pages = self._e.grants.paged(job)
        sent_by = await _last_send_end(self._e.attempts, job) if found is None else None
        result = self._e.policy.after_check(
            job, started, self._e.clock.now(), found, page_usage=pages, sent_by=sent_by
        )
        if isinstance(result, Decision):
            slot.release()
            await self._e.caps.release(job)
            if result.outcome == NOT_SENT:  # look-ups are never refunded, unless never sent
                await self._e.grants.refund(job, unsent=True)
            await self._e.outcomes.record(job, result)
            return
        # Absent, and still in time: publish now if the limits allow, else back to the store
        # without owing a check any more (nothing was sent since the look-up).
        checked = replace(job, delivery=replace(job.delivery, check_first=False))
        wait_s = await self._e.grants.reserve(checked, connector.usage_of(job.content))
        verdict = self._e.admission.after_reserve(checked, wait_s, looked_up=result)
        if isinstance(verdict, Go):
            await self._publish(checked, slot, result)
            return
        slot.release()
        await self._e.caps.release(job)
        await self._e.outcomes.carry_out(checked, verdict)


async def _last_send_end(
    attempts: Callable[[str], Awaitable[list[Attempt]]], job: Job
) -> datetime | None:
    """When the delivery's last send ended, as its attempt records it (the post, if any, was
    made by then), or None if no record of it says."""
    number = job.delivery.attempts
    ends = [
        a.finished_at
        for a in await attempts(job.delivery.id)
        if a.number == number and a.outcome in UNCERTAIN_SENDS
    ]
    return max(ends, default=None)


def _sending(job: Job, marked: Transition) -> Job:
    """``job`` once ``marked``, its ``publishing``, is written: its request may be on the
    wire. A hand-back records that send (its number and start) and looks it up."""
    delivery = replace(
        job.delivery,
        state=DeliveryState.PUBLISHING,
        attempts=job.delivery.attempts + 1,
        check_first=False,
        check_since=marked.check_since,
    )
    return replace(job, delivery=delivery)
