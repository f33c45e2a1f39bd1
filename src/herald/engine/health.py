"""Whether the store answers the engine: its readiness, and how its loops wait for the store.

A store error that is transient (:class:`~herald.errors.StoreUnavailable`: the connection was
lost, the server is restarting, the database file is locked...) never stops the engine. The
loop that meets one reports it here, waits a capped full-jitter back-off
(:class:`herald.backoff.Backoff`, ``engine.store_backoff_base_s`` to ``_cap_s``) and tries
again; a success of any loop reports the store back. Meanwhile the engine is not ready
(``/readyz`` answers 503), nothing is sent (``publishing`` cannot be committed), and the
claims it holds wait. Any other error is a bug and still stops the engine loudly.

Log events, once per outage: ``engine.store_unavailable`` (which loop met it first, the error)
and ``engine.store_back`` (how long the store was away).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from herald.backoff import Backoff
from herald.config import EngineSettings
from herald.engine.metrics import Metrics
from herald.errors import StoreUnavailable
from herald.types import Clock
from herald.wakeup import wait_first

__all__ = ["StoreHealth"]

log = logging.getLogger("herald.engine")

T = TypeVar("T")


class StoreHealth:
    def __init__(
        self,
        settings: EngineSettings,
        metrics: Metrics,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._metrics = metrics
        self._rng = rng
        self._down_since: float | None = None  # monotonic seconds, while the store is away
        self._steady_since = clock.monotonic()  # the store's last failure, or the start
        self.running = False  # between the engine's start-up and its stop

    def start(self) -> None:
        """The engine starts working: ready while the store answers; the clean record
        (:meth:`steady_s`) counts from now."""
        self.running = True
        self._steady_since = self.clock.monotonic()

    @property
    def ready(self) -> bool:
        """The engine runs and the store answered its latest call."""
        return self.running and self._down_since is None

    def steady_s(self) -> float:
        """How long the store has answered without a failure (since the start, at most)."""
        return self.clock.monotonic() - self._steady_since

    def backoff(self) -> Backoff:
        """A back-off for one loop's consecutive failures."""
        s = self.settings
        return Backoff(base_s=s.store_backoff_base_s, cap_s=s.store_backoff_cap_s, rng=self._rng)

    def answered(self) -> None:
        if self._down_since is None:
            return
        away_s = self.clock.monotonic() - self._down_since
        self._down_since = None
        self._metrics.store_up.set(1)
        log.warning("engine.store_back", extra={"away_s": round(away_s, 3)})

    def failed(self, task: str, exc: StoreUnavailable) -> None:
        now = self.clock.monotonic()
        self._steady_since = now
        self._metrics.store_unavailable.labels(task).inc()
        if self._down_since is not None:
            return
        self._down_since = now
        self._metrics.store_up.set(0)
        log.warning("engine.store_unavailable", extra={"task": task, "error": str(exc)})

    async def until_answered(
        self,
        task: str,
        call: Callable[[], Awaitable[T]],
        *,
        stopping: asyncio.Event | None = None,
        within_s: float | None = None,
    ) -> T:
        """``call()`` again after each transient failure until the store answers.

        Raises the last :class:`StoreUnavailable` once ``stopping`` is set or ``within_s``
        seconds have passed; any other error at once.
        """
        backoff = self.backoff()
        deadline = None if within_s is None else self.clock.monotonic() + within_s
        events = () if stopping is None else (stopping,)
        while True:
            try:
                result = await call()
            except StoreUnavailable as exc:
                self.failed(task, exc)
                wait_s = backoff.next_s()
                if deadline is not None:
                    wait_s = min(wait_s, deadline - self.clock.monotonic())
                if wait_s <= 0 or any(event.is_set() for event in events):
                    raise
                await wait_first(*events, within_s=wait_s)
                continue
            self.answered()
            return result
