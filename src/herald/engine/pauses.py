"""Pauses that need a memory: throttles that name no end, and outages of a platform.

The policy decides from one answer; these two signals only make sense over several, so this
engine keeps them here:

- **A throttle that names no end** (no ``Retry-After``, no regain estimate, no known reset:
  :attr:`~herald.errors.RateLimited.named` is False). Its scope pauses ``throttle_pause_s``
  the first time, and twice as long at each throttle that follows a pause, up to
  ``throttle_pause_cap_s``; the first success on the scope starts again from the bottom. A
  fixed pause would knock on a closed door every ``throttle_pause_s`` until a window that may
  be a day long reopens. A throttle that names its end is taken at its word by the policy.
- **An outage**: requests that never reached the platform
  (:class:`~herald.errors.RequestNotSent`). ``outage_errors`` of them within
  ``outage_window_s`` pause every request to the platform (its
  :func:`~herald.limits.rules.outage_key`) for a full-jitter back-off from
  ``outage_pause_base_s``, doubling at each pause after which requests still fail, up to
  ``outage_pause_cap_s``; the first answer from the platform ends the outage. Deliveries wait
  it out in admission like any limit wait, holding no worker, and one whose lateness budget
  runs out meanwhile expires as designed.

Only a request sent after a pause began moves it on: one already on the wire when its scope
paused (a lane runs several at once) neither lengthens the pause nor, succeeding, resets it.

When a pause ends, one request finds out whether the door is open again
(:meth:`Pauses.gate_s`): the others of the scope wait until it is answered (up to
:data:`PROBE_S`), so that a lane running eight at once knocks once, not eight times. A
throttle, named or not, gates its scope so until a success on it; an outage, until the
platform answers.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import overload

from herald.backoff import ceiling, full_jitter
from herald.config import EngineSettings
from herald.domain import Job, Platform
from herald.engine.metrics import Metrics
from herald.errors import PlatformError, RateLimited, RequestNotSent
from herald.limits.rules import outage_key, pause_key
from herald.types import Clock, Published, RateLimiter

__all__ = ["PROBE_S", "Pauses", "Result", "answered"]

#: The longest the one request sent after a pause holds back the others of its scope: it is
#: usually answered within a second, and a lost one must not hold them for long.
PROBE_S = 5.0

log = logging.getLogger("herald.pauses")

#: What a publish or a look-up came back with (``None``: the look-up found nothing).
Result = Published | BaseException | None


def answered(result: Result) -> bool:
    """The platform answered the request: a post, a listing, or an error answer."""
    if isinstance(result, PlatformError):
        return result.status is not None
    return not isinstance(result, BaseException)


@dataclass(slots=True)
class _Ladder:
    """Pauses that grow while their cause lasts."""

    level: int = 0  # 0: not paused; n: the n-th pause in a row
    until: float = 0.0  # the current pause ends (Unix seconds)
    since: float = 0.0  # the current pause began


@dataclass(slots=True)
class _Outage:
    errors: deque[float] = field(default_factory=deque)  # recent unsent requests, oldest first
    pauses: _Ladder = field(default_factory=_Ladder)
    began: float = 0.0


class Pauses:
    def __init__(
        self,
        limiter: RateLimiter,
        settings: EngineSettings,
        metrics: Metrics,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._limiter = limiter
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()
        self._throttles: dict[str, _Ladder] = {}  # by pause key, until a success on it
        self._outages: dict[Platform, _Outage] = {}
        self._probes: dict[str, tuple[str, float]] = {}  # pause key -> (delivery id, until)

    @overload
    async def observe(
        self, job: Job, sent_at: float, result: Published | BaseException
    ) -> Published | BaseException: ...

    @overload
    async def observe(self, job: Job, sent_at: float, result: Result) -> Result: ...

    async def observe(self, job: Job, sent_at: float, result: Result) -> Result:
        """Learn from the result of a request of ``job`` that left at ``sent_at`` (Unix
        seconds); return the result to decide on: a throttle that named no end comes back
        with the pause its scope is due."""
        platform = job.delivery.platform
        if isinstance(result, RequestNotSent):
            self._metrics.not_sent.labels(platform.value).inc()
            await self._not_sent(platform, sent_at)
            return result
        if not answered(result):
            return result
        self._reachable(platform, sent_at)
        if isinstance(result, RateLimited):
            return self._throttled(job, sent_at, result)
        if not isinstance(result, BaseException):
            self._succeeded(job, sent_at)
        return result

    # -- after a pause: one request at a time -------------------------------------------------
    def gate_s(self, job: Job) -> float:
        """0.0: ``job`` may go, as the one request of its scope after a pause if there was
        one; else how long to wait while another finds out whether the pause is over."""
        now = self._clock.time()
        keys = self._gated_keys(job)
        for key in keys:
            holder = self._probes.get(key)
            if holder is not None and holder[0] != job.delivery.id and holder[1] > now:
                return holder[1] - now
        for key in keys:
            self._probes[key] = (job.delivery.id, now + PROBE_S)
        return 0.0

    def release(self, job: Job) -> bool:
        """``job`` is answered or will not be sent: the others may go. True if it held any."""
        held = [key for key, (owner, _) in self._probes.items() if owner == job.delivery.id]
        for key in held:
            del self._probes[key]
        return bool(held)

    def _gated_keys(self, job: Job) -> list[str]:
        platform, account = job.delivery.platform, job.channel.external_id
        keys = [pause_key(platform, scope, account) for scope in ("channel", "app")]
        gated = [key for key in keys if key in self._throttles]
        outage = self._outages.get(platform)
        if outage is not None and outage.pauses.level > 0:
            gated.append(outage_key(platform))
        return gated

    # -- throttles ----------------------------------------------------------------------------
    def _throttled(self, job: Job, sent_at: float, exc: RateLimited) -> RateLimited:
        key = pause_key(job.delivery.platform, exc.scope, job.channel.external_id)
        ladder = self._throttles.setdefault(key, _Ladder())
        now = self._clock.time()
        if exc.named:  # taken at its word; the scope is gated until a success all the same
            ladder.since, ladder.until = now, max(ladder.until, now + exc.retry_after)
            return exc
        if sent_at > ladder.since:  # sent after the last pause began: the throttling goes on
            ladder.level += 1
            base = self._settings.throttle_pause_s
            cap = max(base, self._settings.throttle_pause_cap_s)
            ladder.since = now
            ladder.until = now + ceiling(ladder.level, base_s=base, cap_s=cap)
        grown = RateLimited(
            exc.message,
            retry_after=max(0.0, ladder.until - now),
            scope=exc.scope,
            platform=exc.platform,
            code=exc.code,
            status=exc.status,
            named=False,
        )
        grown.__cause__ = exc.__cause__
        return grown

    def _succeeded(self, job: Job, sent_at: float) -> None:
        """A success shows that the channel's and the app's limits let it through."""
        platform, account = job.delivery.platform, job.channel.external_id
        for scope in ("channel", "app"):
            key = pause_key(platform, scope, account)
            ladder = self._throttles.get(key)
            if ladder is not None and sent_at > ladder.since:
                del self._throttles[key]

    # -- outages ------------------------------------------------------------------------------
    async def _not_sent(self, platform: Platform, sent_at: float) -> None:
        outage = self._outages.setdefault(platform, _Outage())
        pauses, now = outage.pauses, self._clock.time()
        if pauses.level == 0:
            errors, settings = outage.errors, self._settings
            errors.append(now)
            while errors and errors[0] <= now - settings.outage_window_s:
                errors.popleft()
            if len(errors) < settings.outage_errors:
                return
            errors.clear()
            outage.began = now
        elif sent_at <= pauses.since:
            return  # on the wire before this pause began: the pause stands for it already
        pauses.level += 1
        base = self._settings.outage_pause_base_s
        cap = max(base, self._settings.outage_pause_cap_s)
        pause_s = full_jitter(pauses.level, base_s=base, cap_s=cap, rng=self._rng)
        pauses.since, pauses.until = now, now + pause_s
        await self._limiter.block(outage_key(platform), pauses.until)
        self._metrics.outage.labels(platform.value).set(1)
        level = logging.WARNING if pauses.level == 1 else logging.INFO
        fields = {"platform": platform.value, "pauses": pauses.level, "pause_s": round(pause_s, 3)}
        log.log(level, "platform.outage", extra=fields)

    def _reachable(self, platform: Platform, sent_at: float) -> None:
        """The platform answered: an outage ends, once a request sent during it is answered."""
        outage = self._outages.get(platform)
        if outage is None:
            return
        if outage.pauses.level == 0:
            outage.errors.clear()
            return
        if sent_at <= outage.pauses.since:
            return  # an answer to a request from before the last pause
        del self._outages[platform]
        self._metrics.outage.labels(platform.value).set(0)
        fields = {
            "platform": platform.value,
            "pauses": outage.pauses.level,
            "outage_s": round(self._clock.time() - outage.began, 3),
        }
        log.info("platform.recovered", extra=fields)
