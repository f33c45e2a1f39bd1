"""Grants: what the rate limiter allowed each delivery, kept until its request is over.

A job reserves its publish (or look-up) with the limiter before it is sent. The grant is kept
by delivery id, so that a request that definitely failed gives its units back (platforms that
count only successes) and a look-up that reads several listing pages reserves each further
page as it goes, through the request's meter. What those pages reserved is kept until the
look-up's attempt is recorded with it (:meth:`Grants.paged`): a restart's replay counts them.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from herald.domain import Job, Platform
from herald.engine.metrics import Metrics
from herald.errors import LimiterUnavailable, RateLimited
from herald.limits.rules import LimitClaim, LimitRule, claims_for, outage_key, pause_key
from herald.types import Clock, RateLimiter

__all__ = ["Grants", "Meter", "Rules"]

#: The limit rules of each platform.
Rules = Mapping[Platform, tuple[LimitRule, ...]]
#: Reserves one more listing page of a look-up (see :attr:`herald.types.PublishRequest.meter`).
Meter = Callable[[Mapping[str, int]], Awaitable[None]]


@dataclass(eq=False, slots=True)
class Grants:
    limiter: RateLimiter
    rules: Rules
    metrics: Metrics
    clock: Clock
    hold_s: float = field(kw_only=True)  # waits up to this long are held, longer ones are not
    # The limiter cannot be trusted (a shared one away, or being rebuilt): ask again after this.
    unavailable_wait_s: float = field(default=1.0, kw_only=True)
    # With a shared limiter, how long the pauses this process set still last (no round trip).
    paused_here: Callable[[Sequence[str], float], float] | None = field(default=None, kw_only=True)
    # Each delivery's latest grant (its claims, and when), until its request is over.
    _granted: dict[str, tuple[list[LimitClaim], float]] = field(default_factory=dict, init=False)
    # What each delivery's look-up reserved for listing pages after the first, per meter.
    _pages: dict[str, Counter[str]] = field(default_factory=dict, init=False)

    async def reserve(self, job: Job, usage: Mapping[str, int]) -> float:
        """Ask the limiter; 0.0 when granted (the grant is kept for a refund), else the wait
        in seconds (``math.inf``: it can never fit). The channel's and the app's pauses, and
        an outage of the platform, refuse it too."""
        platform, account = job.delivery.platform, job.channel.external_id
        claims = claims_for(platform, self.rules[platform], account, usage)
        now = self.clock.time()
        try:
            wait = await self.limiter.reserve(claims, now, pauses=self._pauses(job))
        except LimiterUnavailable:
            return self.unavailable_wait_s  # nothing admitted until it is rebuilt
        if wait <= 0:
            self._granted[job.delivery.id] = (claims, now)
            self.metrics.rate_limit_grants.labels(platform.value).inc()
            return 0.0
        self.metrics.rate_limit_waits.labels(platform.value).inc()
        return wait

    async def paused_s(self, job: Job) -> float:
        """How long the pauses that bind ``job`` still last (0.0: none); reserves nothing.

        Asked again just before a granted request leaves. With a shared limiter the answer is
        this process's own (``paused_here``): its reservation, milliseconds before, read
        every pause in Redis in the same step as its limits, and a second round trip for each
        request would cost more than what it guards against, a pause another worker set in
        those milliseconds (the request then meets the throttle, and is retried after it)."""
        if self.paused_here is not None:
            return self.paused_here(self._pauses(job), self.clock.time())
        try:
            return await self.limiter.reserve((), self.clock.time(), pauses=self._pauses(job))
        except LimiterUnavailable:
            return self.unavailable_wait_s

    @staticmethod
    def _pauses(job: Job) -> tuple[str, ...]:
        """The pause keys that bind ``job``: its channel's, its app's, its platform's outage."""
        platform, account = job.delivery.platform, job.channel.external_id
        return (
            pause_key(platform, "channel", account),
            pause_key(platform, "app", account),
            outage_key(platform),
        )

    def is_short(self, wait_s: float) -> bool:
        """A wait short enough (``hold_s``) to be waited out on a timer rather than in the
        store."""
        return wait_s <= self.hold_s and math.isfinite(wait_s)

    async def refund(self, job: Job, *, unsent: bool = False) -> None:
        """The request definitely did not publish: give the refundable units back; with
        ``unsent`` (it never reached the platform), every unit."""
        grant = self._granted.pop(job.delivery.id, None)
        if grant is not None:
            await self.limiter.refund(*grant, unsent=unsent)

    def drop(self, job: Job) -> None:
        """The job is over for this engine: the grant stays spent."""
        self._granted.pop(job.delivery.id, None)
        self._pages.pop(job.delivery.id, None)

    def paged(self, job: Job) -> dict[str, int]:
        """What ``job``'s look-up reserved for its listing pages after the first, per meter
        (empty: one page); to be recorded with the look-up's outcome."""
        return dict(self._pages.pop(job.delivery.id, {}))

    def meter(self, job: Job) -> Meter:
        """The meter of ``job``'s look-up: reserves each listing page after the first."""
        return functools.partial(self._page, job)

    async def _page(self, job: Job, usage: Mapping[str, int]) -> None:
        """Short waits are waited out (holding the slot: the look-up is under way); a long one
        ends the look-up as throttled by Herald's own limiter, to be tried again when the
        limit allows."""
        while True:
            wait = await self.reserve(job, usage)
            if wait <= 0:
                self._pages.setdefault(job.delivery.id, Counter()).update(usage)
                return
            if not self.is_short(wait):
                raise RateLimited(
                    f"{job.delivery.platform.value}: the look-up's next page waits for the limit",
                    retry_after=wait if math.isfinite(wait) else self.hold_s,
                    scope="channel",
                    platform=job.delivery.platform.value,
                    pause=False,
                )
            await asyncio.sleep(wait)  # a computed deadline, not a polling beat
