"""Admission: may this claimed job be sent now, and if not, what becomes of it?

Asked with a lane's concurrency slot in hand, just before a request would leave (see
:mod:`herald.engine.lane`). In order: is the channel parked (hand the job back unsent)? Has it
expired, or does the platform refuse its content (settle it without sending)? Is another
request finding out whether a pause of its scope is over (hold it, see
:meth:`~herald.engine.pauses.Pauses.gate_s`)? Do the limits allow it now (go), soon (hold it
in the lane), later (hand it back to the store, due then), or never (settle it as too big)?

Admission decides; the worker pool carries the verdict out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from herald.domain import Attempt, Job, Transition
from herald.engine.grants import Grants
from herald.engine.parking import ParkedChannels
from herald.engine.pauses import Pauses
from herald.engine.policy import Decision, Policy
from herald.errors import ContentInvalid, ContentRejected
from herald.types import Clock, Connector

__all__ = ["GO", "Admission", "Go", "HandBack", "Hold", "Settle", "Verdict"]


@dataclass(frozen=True, slots=True)
class Go:
    """Send now: the limiter granted it (see :class:`~herald.engine.grants.Grants`)."""


@dataclass(frozen=True, slots=True)
class Hold:
    """Wait in the lane, slot given back, and ask again after ``wait_s``."""

    wait_s: float


@dataclass(frozen=True, slots=True)
class HandBack:
    """Back to the store unsent, as ``transition`` says: due again once the limit wait
    ``wait_s`` is over, or (``wait_s`` None) once the user re-authorises its parked channel."""

    transition: Transition
    wait_s: float | None = None


@dataclass(frozen=True, slots=True)
class Settle:
    """Decided without sending anything (expired, refused content, too big for a limit)."""

    decision: Decision


Verdict = Go | Hold | HandBack | Settle
GO: Final = Go()


@dataclass(eq=False, slots=True)
class Admission:
    policy: Policy
    grants: Grants
    parked: ParkedChannels
    clock: Clock
    pauses: Pauses

    async def admit(
        self, job: Job, connector: Connector, *, may_hold: Callable[[], bool]
    ) -> Verdict:
        """The verdict on ``job``, to be sent through ``connector``. ``may_hold()`` is asked
        once the limiter has answered (a stop may begin while it does): False (the engine is
        stopping), a short limit wait hands the job back rather than hold it."""
        now = self.clock.now()
        if await self.parked.holds(job.channel):
            # Claimed before its channel was parked: rather than send a request the platform
            # is bound to refuse, hand it back. The store holds it until the user re-authorises.
            return HandBack(self.policy.release(job, now))
        if not job.delivery.check_first:
            if self.policy.is_expired(job, now):
                return Settle(self.policy.expire(job, now))
            try:
                connector.validate(job.content)
            except ContentInvalid as exc:
                return Settle(self.policy.rejected_unsent(job, exc))
        check = job.delivery.check_first
        usage = connector.lookup_usage() if check else connector.usage_of(job.content)
        gate_s = self.pauses.gate_s(job)
        if gate_s > 0 and may_hold():
            return Hold(gate_s)  # short, and ended early by the answer: held, whatever hold_s
        wait_s = gate_s or await self.grants.reserve(job, usage)
        if wait_s > 0:
            self.pauses.release(job)  # it is not the request that finds out
        if wait_s > 0 and self.grants.is_short(wait_s) and may_hold():
            return Hold(wait_s)
        return self.after_reserve(job, wait_s)

    def after_reserve(
        self, job: Job, wait_s: float, *, looked_up: Attempt | None = None
    ) -> Go | HandBack | Settle:
        """The verdict on a reservation that answered ``wait_s`` (0: granted), for a job that
        is not to be held in its lane. ``looked_up``: the look-up that found nothing just
        before; a job not sent now is written with it (the platform counted it)."""
        if wait_s <= 0:
            return GO
        if math.isinf(wait_s):
            platform = job.delivery.platform.value
            error = ContentRejected(f"one publish needs more than a {platform} limit allows")
            return Settle(self.policy.rejected_unsent(job, error, looked_up=looked_up))
        next_at = self.clock.now() + timedelta(seconds=wait_s)
        return HandBack(self.policy.release(job, next_at, looked_up=looked_up), wait_s)
