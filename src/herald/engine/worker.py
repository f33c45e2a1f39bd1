"""The worker pool: takes claimed deliveries off the queue and carries each one through.

Per delivery: admission (expired? valid? paused? within limits?), then either a look-up (when
the last request had an unknown outcome) or a publish, then the outcome decided by
:mod:`herald.engine.policy` and written through the group-commit writer. The ``publishing`` state is
committed before a request leaves, which is what lets a crash never cause a duplicate.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from herald.constants import CHANNEL_NEEDS_REAUTH
from herald.domain import Attempt, Channel, ChannelStatus, Job, Platform
from herald.engine.lane import Lane, Slot
from herald.engine.metrics import Metrics
from herald.engine.policy import Decision, Policy, webhook_event
from herald.engine.writer import TransitionWriter
from herald.errors import AuthExpired, ContentInvalid, ContentRejected, QueueError, RateLimited
from herald.limits.replay import gives_back
from herald.limits.rules import LimitClaim, LimitRule, claims_for, pause_key
from herald.types import (
    Clock,
    Connector,
    CredentialResolver,
    EngineStore,
    JobQueue,
    Published,
    PublishRequest,
    RateLimiter,
)

__all__ = ["WorkerContext", "WorkerPool"]

log = logging.getLogger("herald.worker")


def _fields(job: Job, **more: object) -> dict[str, object]:
    delivery = job.delivery
    return {
        "delivery_id": delivery.id,
        "post_id": delivery.post_id,
        "channel_id": delivery.channel_id,
        "platform": delivery.platform.value,
        **more,
    }


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What the workers use, wired by the engine."""

    store: EngineStore
    queue: JobQueue
    writer: TransitionWriter
    limiter: RateLimiter
    rules: Mapping[Platform, tuple[LimitRule, ...]]
    connectors: Mapping[Platform, Connector]
    credentials: CredentialResolver
    concurrency: Mapping[Platform, int]
    hold_s: float
    policy: Policy
    metrics: Metrics
    clock: Clock
    finish: Callable[[Job], Awaitable[None]]  # the job is over for this engine
    dispatcher_notify: Callable[[datetime], None]
    forget_credentials: Callable[[Channel], None]
    events_recorded: Callable[[], None]  # a webhook event was written (wakes the sender)


class WorkerPool:
    def __init__(self, engine: WorkerContext) -> None:
        self._e = engine
        self._policy = engine.policy
        self._stopping = False
        self._jobs: dict[str, Job] = {}  # every job currently executing
        self._parked: set[str] = set()  # channels found needing re-authorisation
        self._lane_tasks: list[asyncio.Task[None]] = []
        self._grants: dict[str, tuple[list[LimitClaim], float]] = {}  # by delivery id
        self.lanes = {
            platform: Lane(
                platform.value,
                engine.concurrency[platform],
                self._admit,
                self._execute,
                self._admission_failed,
            )
            for platform in engine.connectors
        }

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        """Feed the lanes from the queue until the queue closes, the lanes running alongside.

        A lane that dies takes the pool down with it, and the engine with the pool: failing
        loudly beats holding its deliveries' leases, unserved, for as long as the process lives.
        """
        self._lane_tasks = [
            asyncio.create_task(lane.run(), name=f"herald-lane-{lane.name}")
            for lane in self.lanes.values()
        ]
        feeding = asyncio.create_task(self._feed(), name="herald-feed")
        try:
            await asyncio.gather(feeding, *self._lane_tasks)
        finally:
            feeding.cancel()
            for task in self._lane_tasks:
                task.cancel()

    async def _feed(self) -> None:
        while True:
            try:
                job = await self._e.queue.get()
            except QueueError:
                return
            self.lanes[job.delivery.platform].submit(job)

    async def _admission_failed(self, job: Job, exc: Exception) -> None:
        log.error("delivery.admission_error", exc_info=exc, extra=_fields(job))
        self._grants.pop(job.delivery.id, None)
        await self._e.finish(job)

    def stop_taking(self) -> None:
        self._stopping = True
        for lane in self.lanes.values():
            lane.stop()

    async def drain(self, grace_s: float, leftovers: list[Job]) -> None:
        """Let in-flight requests finish (up to ``grace_s``), then hand everything back."""
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
        now = self._e.clock.now()
        waiting = [(job, 0.0) for job in leftovers]
        for lane in self.lanes.values():
            waiting += lane.take_waiting()
        waiting += [(job, 0.0) for job in self._jobs.values()]
        await self._hand_back(waiting, now)

    async def _hand_back(self, waiting: list[tuple[Job, float]], now: datetime) -> None:
        releases = [
            self._policy.release(job, now + timedelta(seconds=delay)) for job, delay in waiting
        ]
        done = await self._e.store.apply(releases)
        # A job that could not be released unsent had its request on the wire: look it up.
        unsure = [job for (job, _), ok in zip(waiting, done, strict=True) if not ok]
        if unsure:
            await self._e.store.apply([self._policy.abandoned(job, now) for job in unsure])
        for job, _ in waiting:
            await self._e.finish(job)
        log.info("engine.released", extra={"released": sum(done), "unconfirmed": len(unsure)})

    # -- admission --------------------------------------------------------------------------
    async def _admit(self, job: Job) -> bool:
        """True: send now. False: the job was deferred in this lane, or settled and finished."""
        now = self._e.clock.now()
        connector = self._e.connectors[job.delivery.platform]
        if job.channel.id in self._parked and not await self._unparked(job):
            # Claimed before its channel was parked: hand it back rather than send a request
            # the platform is bound to refuse. The store holds it until the user re-authorises.
            await self._e.writer.write(self._policy.release(job, now))
            await self._e.finish(job)
            return False
        if not job.delivery.check_first:
            if self._policy.is_expired(job, now):
                await self._settle(job, self._policy.expire(job, now))
                return False
            try:
                connector.validate(job.content)
            except ContentInvalid as exc:
                await self._settle(job, self._policy.rejected_unsent(job, exc))
                return False
        check = job.delivery.check_first
        usage = connector.lookup_usage() if check else connector.usage_of(job.content)
        wait = await self._reserve(job, usage)
        if wait <= 0:
            return True
        if math.isinf(wait):
            await self._settle(job, self._too_big(job))
        elif wait <= self._e.hold_s and not self._stopping:
            self.lanes[job.delivery.platform].defer(job, wait)
        else:
            await self._release(job, wait)
            await self._e.finish(job)
        return False

    async def _unparked(self, job: Job) -> bool:
        channel = await self._e.store.get_channel(job.channel.id)
        if channel.status is ChannelStatus.ACTIVE:
            self._parked.discard(channel.id)
            return True
        return False

    async def _reserve(self, job: Job, usage: Mapping[str, int]) -> float:
        """Ask the limiter; 0.0 when granted (the grant is kept for a refund), else the wait."""
        platform, account = job.delivery.platform, job.channel.external_id
        claims = claims_for(platform, self._e.rules[platform], account, usage)
        pauses = (pause_key(platform, "channel", account), pause_key(platform, "app", account))
        now = self._e.clock.time()
        wait = await self._e.limiter.reserve(claims, now, pauses=pauses)
        if wait <= 0:
            self._grants[job.delivery.id] = (claims, now)
            return 0.0
        self._e.metrics.rate_limit_waits.labels(platform.value).inc()
        return wait

    def _too_big(self, job: Job) -> Decision:
        platform = job.delivery.platform.value
        error = ContentRejected(f"one publish needs more than a {platform} limit allows")
        return self._policy.rejected_unsent(job, error)

    async def _release(self, job: Job, wait_s: float) -> None:
        """Hand an unsent job back to the store, due again after ``wait_s``."""
        next_at = self._e.clock.now() + timedelta(seconds=wait_s)
        if await self._e.writer.write(self._policy.release(job, next_at)):
            self._e.dispatcher_notify(next_at)
        log.info("delivery.deferred", extra=_fields(job, wait_s=round(wait_s, 3)))

    async def _settle(self, job: Job, decision: Decision) -> None:
        """Write a decision taken before anything was sent, and let the job go."""
        await self._carry_out(job, decision)
        await self._e.finish(job)

    # -- execution --------------------------------------------------------------------------
    async def _execute(self, job: Job, slot: Slot) -> None:
        self._jobs[job.delivery.id] = job
        try:
            if job.delivery.check_first:
                await self._check(job, slot)
            else:
                await self._publish(job, slot, None)
        except asyncio.CancelledError:
            raise  # drain() hands the job back
        except Exception:
            # A bug, not a platform answer. The lease and the sweeper recover the delivery;
            # if a request may have left, it is looked up before any resend.
            log.exception("delivery.worker_error", extra=_fields(job))
        self._jobs.pop(job.delivery.id, None)
        self._grants.pop(job.delivery.id, None)
        await self._e.finish(job)

    async def _credentials(self, job: Job) -> PublishRequest | None:
        try:
            secrets = await self._e.credentials.resolve(job.channel)
        except AuthExpired as exc:
            await self._carry_out(job, self._policy.auth_unsent(job, exc, self._e.clock.now()))
            return None
        delivery = job.delivery
        since = delivery.check_since or delivery.due_at  # connectors widen it by clock skew
        return PublishRequest(
            delivery_id=delivery.id,
            channel=job.channel,
            credentials=secrets,
            content=job.content,
            attempt=delivery.attempts + 1,
            since=since,
            meter=functools.partial(self._meter_page, job),
        )

    async def _meter_page(self, job: Job, usage: Mapping[str, int]) -> None:
        """Reserve one more listing page of a look-up. Short waits are waited out (holding the
        slot: the look-up is under way); a long one ends the look-up as throttled by Herald's
        own limiter, to be tried again when the limit allows."""
        while True:
            wait = await self._reserve(job, usage)
            if wait <= 0:
                return
            if wait > self._e.hold_s or math.isinf(wait):
                raise RateLimited(
                    f"{job.delivery.platform.value}: the look-up's next page waits for the limit",
                    retry_after=wait if math.isfinite(wait) else self._e.hold_s,
                    scope="channel",
                    platform=job.delivery.platform.value,
                    pause=False,
                )
            await asyncio.sleep(wait)  # a computed deadline, not a polling beat

    async def _publish(self, job: Job, slot: Slot, looked_up: Attempt | None) -> None:
        request = await self._credentials(job)
        if request is None:
            await self._refund(job)
            return
        if not await self._e.writer.write(
            self._policy.publishing(job, self._e.clock.now(), looked_up=looked_up)
        ):
            await self._refund(job)
            log.info("delivery.claim_lost", extra=_fields(job))  # cancelled or taken over
            return
        connector = self._e.connectors[job.delivery.platform]
        started, timer = self._e.clock.now(), self._e.clock.monotonic()
        try:
            result: Published | Exception = await connector.publish(request)
        except Exception as exc:
            result = exc
        finally:
            slot.release()
        self._e.metrics.publish_seconds.labels(job.delivery.platform.value).observe(
            self._e.clock.monotonic() - timer
        )
        decision = self._policy.after_publish(job, started, self._e.clock.now(), result)
        attempt = decision.transition.attempt
        if attempt is not None and gives_back(attempt.outcome):
            await self._refund(job)  # definitely not published (a restart's replay agrees)
        await self._carry_out(job, decision)

    async def _refund(self, job: Job) -> None:
        grant = self._grants.pop(job.delivery.id, None)
        if grant is not None:
            await self._e.limiter.refund(*grant)

    async def _check(self, job: Job, slot: Slot) -> None:
        request = await self._credentials(job)
        if request is None:
            return
        connector = self._e.connectors[job.delivery.platform]
        started = self._e.clock.now()
        try:
            found: Published | Exception | None = await connector.find(request)
        except Exception as exc:
            found = exc
        result = self._policy.after_check(job, started, self._e.clock.now(), found)
        if isinstance(result, Decision):
            slot.release()
            await self._carry_out(job, result)
            return
        # Absent, and still in time: publish now if the limits allow, else back to the store
        # without owing a check any more (nothing was sent since the look-up).
        checked = replace(job, delivery=replace(job.delivery, check_first=False))
        wait = await self._reserve(checked, connector.usage_of(job.content))
        if wait <= 0:
            await self._publish(checked, slot, result)
            return
        slot.release()
        if math.isinf(wait):
            await self._carry_out(checked, self._too_big(checked))
        else:
            await self._release(checked, wait)

    async def _carry_out(self, job: Job, decision: Decision) -> None:
        platform, channel = job.delivery.platform, job.channel
        for scope, until in decision.pauses:
            await self._e.limiter.block(
                pause_key(platform, scope, channel.external_id), until.timestamp()
            )
        if decision.channel_status is not None:
            await self._e.store.set_channel_status(
                channel.id, decision.channel_status, event=CHANNEL_NEEDS_REAUTH
            )
            self._e.events_recorded()
            self._e.forget_credentials(channel)
            self._parked.add(channel.id)
        t = replace(decision.transition, event=webhook_event(decision))
        applied = await self._e.writer.write(t)
        self._e.metrics.deliveries.labels(platform.value, decision.outcome).inc()
        if decision.outcome == "retry":
            self._e.metrics.retries.labels(platform.value).inc()
        if t.published_at is not None and applied:
            lateness = (t.published_at - job.delivery.due_at).total_seconds()
            self._e.metrics.lateness_seconds.labels(platform.value).observe(max(0.0, lateness))
        if applied and t.next_attempt_at is not None:
            self._e.dispatcher_notify(t.next_attempt_at)
        if applied and t.event is not None:
            self._e.events_recorded()
        level = (
            logging.INFO
            if decision.outcome in ("published", "reconciled", "retry")
            else logging.WARNING
        )
        log.log(
            level,
            decision.event,
            extra=_fields(
                job,
                outcome=decision.outcome,
                applied=applied,
                error=t.error,
                external_id=t.external_id,
            ),
        )
