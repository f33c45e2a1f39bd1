"""Outcomes: what the engine decided for a delivery, made so.

For a :class:`~herald.engine.policy.Decision`: the platform's pauses go to the limiter, a
channel that needs the user is parked, the guarded transition (with its webhook event) goes
through the group-commit writer, then the metrics, the log line, and the wake-ups of whoever
waits for what was written (the dispatcher for a retry's due time, the webhook sender for an
event). For a job handed back unsent: its write, and the dispatcher's wake-up at its due time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from herald.domain import Job
from herald.engine.admission import HandBack, Settle
from herald.engine.metrics import Metrics
from herald.engine.parking import ParkedChannels
from herald.engine.policy import Decision, webhook_event
from herald.engine.writer import TransitionWriter
from herald.limits.rules import pause_key
from herald.types import RateLimiter

__all__ = ["Outcomes", "log_fields"]

log = logging.getLogger("herald.worker")

#: Logged at INFO: nothing for an operator to look at. A look-up that came before listings
#: settled is the usual path of an uncertain send, not a warning.
_QUIET_OUTCOMES = frozenset(
    {"published", "reconciled", "retry", "not_sent", "paused", "not_listed_yet"}
)


def log_fields(job: Job, **more: object) -> dict[str, object]:
    """The ids a delivery's log lines carry, and ``more``."""
    delivery = job.delivery
    return {
        "delivery_id": delivery.id,
        "post_id": delivery.post_id,
        "channel_id": delivery.channel_id,
        "platform": delivery.platform.value,
        **more,
    }


@dataclass(eq=False, slots=True)
class Outcomes:
    writer: TransitionWriter
    limiter: RateLimiter
    parked: ParkedChannels
    metrics: Metrics
    wake: Callable[[datetime], None] = field(kw_only=True)  # the dispatcher: work due then
    events_recorded: Callable[[], None] = field(kw_only=True)  # the webhook sender

    async def carry_out(self, job: Job, verdict: HandBack | Settle) -> None:
        """Write what admission decided for a job that is not sent."""
        if isinstance(verdict, Settle):
            await self.record(job, verdict.decision)
            return
        t = verdict.transition
        applied = await self.writer.write(t)
        if verdict.wait_s is None:
            return  # a parked channel's: the dispatcher claims nothing of it, no wake-up
        if applied and t.next_attempt_at is not None:
            self.wake(t.next_attempt_at)
        log.info("delivery.deferred", extra=log_fields(job, wait_s=round(verdict.wait_s, 3)))

    async def record(self, job: Job, decision: Decision) -> None:
        platform, channel = job.delivery.platform, job.channel
        for scope, until in decision.pauses:
            await self.limiter.block(
                pause_key(platform, scope, channel.external_id), until.timestamp()
            )
        if decision.channel_status is not None:
            await self.parked.park(channel, decision.channel_status)
        t = replace(decision.transition, event=webhook_event(decision))
        applied = await self.writer.write(t)
        self.metrics.deliveries.labels(platform.value, decision.outcome).inc()
        if decision.outcome == "retry":
            self.metrics.retries.labels(platform.value).inc()
        if t.published_at is not None and applied:
            lateness = (t.published_at - job.delivery.due_at).total_seconds()
            self.metrics.lateness_seconds.labels(platform.value).observe(max(0.0, lateness))
        if applied and t.next_attempt_at is not None:
            self.wake(t.next_attempt_at)
        if applied and t.event is not None:
            self.events_recorded()
        level = logging.INFO if decision.outcome in _QUIET_OUTCOMES else logging.WARNING
        fields = log_fields(
            job, outcome=decision.outcome, applied=applied, error=t.error, external_id=t.external_id
        )
        log.log(level, decision.event, extra=fields)
