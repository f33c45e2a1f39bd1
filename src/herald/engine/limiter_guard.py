"""The engine's limiter, guarded: nothing is admitted on a limiter that lost its state.

A shared limiter (Redis) can be away, or come back empty after a restart; it then raises
:class:`~herald.errors.LimiterUnavailable` rather than admit. :class:`LimiterGuard` wraps the
engine's limiter and takes it from there:

- a reservation refused so marks the limiter lost; until it is rebuilt, every reservation is
  refused at once, without a round trip (the grants treat that as a short wait: the request
  asks again after ``limits.unavailable_retry_s``);
- :meth:`LimiterGuard.run` rebuilds it from the store's attempts (the same replay as at
  start-up), trying again after a back-off while Redis or the store is away;
- a refund or a pause that cannot be written is logged and let go: a lost refund leaves its
  units spent (never too many requests), and a lost pause is learnt again from the platform.

Log events: ``limits.unavailable`` (once per loss), ``engine.limits_restored`` (how many
requests the replay counted; None when another engine had rebuilt the shared limiter),
``limits.refund_lost``, ``limits.pause_lost``. Metrics: ``herald_limiter_up`` (0 from a loss
until the rebuild), ``herald_limiter_errors_total`` (every call that failed so).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from herald.engine.health import StoreHealth
from herald.engine.metrics import Metrics
from herald.errors import LimiterUnavailable, StoreUnavailable
from herald.limits.rules import LimitClaim
from herald.types import EarlierGrants, RateLimiter
from herald.wakeup import wait_first

__all__ = ["LimiterGuard"]

log = logging.getLogger("herald.engine")

#: Rebuilds the limiter from the store (:func:`herald.limits.replay.restore`, bound to the
#: engine's store, connectors and rules); returns how many requests it replayed, or None.
Restore = Callable[[RateLimiter], Awaitable[int | None]]


class LimiterGuard:
    """Implements :class:`herald.types.RateLimiter` around ``limiter``."""

    def __init__(
        self,
        limiter: RateLimiter,
        restore: Restore,
        *,
        health: StoreHealth,
        metrics: Metrics,
    ) -> None:
        self.limiter = limiter
        self._metrics = metrics
        self._restore = restore
        self._health = health  # its back-off, and the store's failures and returns
        self._lost = asyncio.Event()
        self._blocked: dict[str, float] = {}  # the pauses this process set, until when

    @property
    def lost(self) -> bool:
        """The limiter cannot be trusted until rebuilt: nothing is admitted."""
        return self._lost.is_set()

    # -- the Protocol -----------------------------------------------------------------------
    async def reserve(
        self, claims: Sequence[LimitClaim], now: float, *, pauses: Sequence[str] = ()
    ) -> float:
        if self.lost:
            raise LimiterUnavailable("the limiter is being rebuilt")
        try:
            return await self.limiter.reserve(claims, now, pauses=pauses)
        except LimiterUnavailable as exc:
            self._lose(exc)
            raise

    def quota_use(self, now: float) -> dict[tuple[str, str], float]:
        return self.limiter.quota_use(now)

    async def refund(
        self, claims: Sequence[LimitClaim], granted_at: float, *, unsent: bool = False
    ) -> None:
        try:
            await self.limiter.refund(claims, granted_at, unsent=unsent)
        except LimiterUnavailable as exc:
            self._metrics.limiter_errors.inc()
            log.warning("limits.refund_lost", extra={"error": str(exc)})

    async def replay(self, claims: Sequence[LimitClaim], granted_at: float) -> None:
        await self.limiter.replay(claims, granted_at)

    async def rebuild(self, earlier: EarlierGrants) -> int | None:
        return await self.limiter.rebuild(earlier)

    async def block(self, key: str, until: float) -> None:
        self._blocked[key] = max(until, self._blocked.get(key, 0.0))
        try:
            await self.limiter.block(key, until)
        except LimiterUnavailable as exc:
            self._metrics.limiter_errors.inc()
            log.warning("limits.pause_lost", extra={"key": key, "error": str(exc)})

    def paused_here_s(self, pauses: Sequence[str], now: float) -> float:
        """How long the pauses among ``pauses`` that this process set still last (0.0:
        none), without asking a shared limiter: see :class:`herald.engine.grants.Grants`."""
        for key, until in list(self._blocked.items()):
            if until <= now:
                del self._blocked[key]
        return max((self._blocked.get(key, 0.0) - now for key in pauses), default=0.0)

    # -- rebuilding -------------------------------------------------------------------------
    def _lose(self, exc: LimiterUnavailable) -> None:
        self._metrics.limiter_errors.inc()
        self._metrics.limiter_up.set(0)
        if not self.lost:
            log.warning("limits.unavailable", extra={"error": str(exc)})
            self._lost.set()

    async def restore(self, stopping: asyncio.Event) -> None:
        """Rebuild the limiter from the store, trying again while Redis or the store is away;
        raises the last error once ``stopping`` is set."""
        backoff, store_failed = self._health.backoff(), False
        while True:
            try:
                requests = await self._restore(self.limiter)
            except (LimiterUnavailable, StoreUnavailable) as exc:
                if isinstance(exc, StoreUnavailable):
                    self._health.failed("limits", exc)
                    store_failed = True
                else:
                    self._metrics.limiter_errors.inc()
                    self._metrics.limiter_up.set(0)
                if stopping.is_set():
                    raise
                await wait_first(stopping, within_s=backoff.next_s())
                continue
            if store_failed:
                self._health.answered()
            self._lost.clear()
            self._metrics.limiter_up.set(1)
            log.info("engine.limits_restored", extra={"requests": requests})
            return

    async def run(self, stopping: asyncio.Event) -> None:
        """Rebuild the limiter each time it is lost, until ``stopping`` is set."""
        while True:
            await wait_first(self._lost, stopping, within_s=None)
            if stopping.is_set():
                return
            try:
                await self.restore(stopping)
            except (LimiterUnavailable, StoreUnavailable):
                return  # stopping while it waited
