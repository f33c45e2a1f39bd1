"""The lease keeper: keeps this engine's claims alive, and gives back those of engines that died.

- **Heartbeat.** Every ``engine.heartbeat_s`` the engine records in the store's registry that
  it is alive (:meth:`~herald.types.EngineStore.beat`). Its claims carry its id.
- **Dead engines.** At each beat, the claims of every engine whose last beat is older than
  ``engine.dead_after_s`` are released as a lapsed lease is (claimed: claimable again;
  publishing: ``unconfirmed``, looked up before any resend) and the engine is removed: a
  killed engine's deliveries come back within seconds, by whichever engine sees it first.
  Only a judge with a clean record judges: this engine must itself have had answers from the
  store for ``dead_after_s`` without a failure. When the store was away for every engine (a
  failover), each then gets ``dead_after_s`` to beat again before another takes its work. An
  engine taken for dead while it lives registers again at its next beat; its writes on the
  claims it lost are refused by their tokens.
- **Leases**, the backstop (claims without an engine, or one whose row is gone): every
  ``engine.lease_s`` / 3 this engine renews the leases it holds and releases the lapsed ones
  of any engine. A dispatcher process holds the claims it handed to a broker while no worker
  has read their messages (the queue's :meth:`~herald.types.JobQueue.unread`), with leases of
  ``broker.handoff_s`` renewed every third of it: a message the broker lost, or whose
  dispatcher died, lapses that soon and is claimed and sent again; one waiting in a live broker
  never does (a backlog is not duplicated).

Each step runs at its own computed deadline; a store that is away is tried again after a
growing back-off (:mod:`herald.engine.health`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from datetime import timedelta

from herald.engine.dispatcher import InFlight
from herald.engine.health import StoreHealth
from herald.engine.metrics import Metrics
from herald.errors import StoreUnavailable
from herald.types import EngineInfo, EngineStore, Recovered
from herald.wakeup import wait_first

__all__ = ["LeaseKeeper"]

log = logging.getLogger("herald.engine")


class LeaseKeeper:
    """Keeps the claims of the engine ``identity`` (those in ``in_flight``); its settings and
    clock are its ``health``'s."""

    def __init__(
        self,
        store: EngineStore,
        identity: EngineInfo,
        in_flight: InFlight,
        health: StoreHealth,
        metrics: Metrics,
        *,
        wake: Callable[[], None],
        lease_s: float | None = None,
        held: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self.identity = identity
        # The claim tokens whose leases it renews: those of the jobs this engine holds; a
        # dispatcher's, those of the jobs it handed to a broker that no worker read yet.
        self._held = held or in_flight.tokens
        # The lease this engine's claims take: renewed, and lapsed ones looked for, every third.
        self._lease_s = lease_s or health.settings.lease_s
        self._store = store
        self._in_flight = in_flight
        self._health = health
        self._settings = health.settings
        self._clock = health.clock
        self._registered = False
        self._wake = wake  # the dispatcher: deliveries became claimable
        self._metrics = metrics

    async def register(self) -> None:
        """The first beat: this engine is in the registry before it claims anything."""
        await self._store.beat(self.identity, self._clock.now())
        self._registered = True

    async def deregister(self) -> None:
        """Leave the registry, releasing anything this engine still holds (a graceful stop
        hands its work back first: normally nothing)."""
        left = await self._store.deregister_engine(self.identity.id, self._clock.now())
        self._registered = False
        if left.deliveries:
            log.warning("engine.released_on_leaving", extra={"deliveries": left.deliveries})

    async def run(self, stopping: asyncio.Event) -> None:
        s, backoff = self._settings, self._health.backoff()
        start = self._now()
        beat_at, renew_at = start + s.heartbeat_s, start + self._lease_s / 3
        while not stopping.is_set():
            await wait_first(stopping, within_s=max(0.0, min(beat_at, renew_at) - self._now()))
            if stopping.is_set():
                return
            due = [self._now() >= beat_at, self._now() >= renew_at]
            if not any(due):
                continue  # woken a moment early
            try:
                if due[0]:
                    await self._beat()
                    beat_at = self._now() + s.heartbeat_s
                if due[1]:
                    await self._renew()
                    renew_at = self._now() + self._lease_s / 3
            except StoreUnavailable as exc:
                self._health.failed("leases", exc)
                # The steps still due run at the next try, after the back-off.
                await wait_first(stopping, within_s=backoff.next_s())
                continue
            backoff.reset()
            self._health.answered()

    def _now(self) -> float:
        return self._clock.monotonic()

    async def _beat(self) -> None:
        now = self._clock.now()
        if not await self._store.beat(self.identity, now) and self._registered:
            # Another engine took this one for dead and released its claims: those of its
            # writes are refused by their tokens; it carries on with new claims.
            log.warning("engine.registered_again", extra={"engine_id": self.identity.id})
        self._registered = True
        dead_after_s = self._settings.dead_after_s
        if self._health.steady_s() < dead_after_s:
            return  # no clean record yet: every engine may just have lost the store too
        dead_before = now - timedelta(seconds=dead_after_s)
        self._released(await self._store.recover_dead_engines(now, dead_before=dead_before))

    def _released(self, recovered: Recovered) -> None:
        if recovered.engines:
            log.warning(
                "engine.dead_recovered",
                extra={"engines": list(recovered.engines), "deliveries": recovered.deliveries},
            )
        if recovered.deliveries:
            self._metrics.lease_recoveries.labels("expired_lease").inc(recovered.deliveries)
            self._wake()

    async def _renew(self) -> None:
        now = self._clock.now()
        tokens = list(self._held())
        if tokens:
            lease = now + timedelta(seconds=self._lease_s)
            await self._store.extend_leases(tokens, lease)
        released = await self._store.recover_expired_leases(now)
        if released:
            self._metrics.lease_recoveries.labels("expired_lease").inc(released)
            self._wake()
