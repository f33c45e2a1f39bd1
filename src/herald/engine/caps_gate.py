"""The caps gate: a request takes its concurrency slots before it goes, and gives them back.

Caps wider than one process (per channel, per app, per platform across engines: see
:mod:`herald.caps.claims`) live in a :class:`~herald.types.ConcurrencyCaps`, in memory or
shared through Redis. The gate keeps each delivery's permit from the moment it is taken until
its request is over, and:

- says how long a job whose caps are full is to wait: until a lease must have run out, or
  ``recheck_s`` for shared caps (a slot another engine frees wakes no one here); a slot
  released *in this process* wakes one waiter of each cap it frees at once;
- renews every permit it holds each third of a lease (:meth:`CapsGate.run`), so that the
  slots of a request still in flight never lapse, and those of a dead engine do;
- treats caps that cannot be reached as full for ``unavailable_wait_s``: nothing is sent
  without its slots. A release or renewal that fails is logged and let go: the lease frees
  the slot.

Log events: ``caps.unavailable``, ``caps.release_lost``, ``caps.renew_lost``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping

from herald.caps.claims import CapLimits, cap_claims
from herald.domain import Job, Platform
from herald.errors import CapsError
from herald.types import CapsFull, Clock, ConcurrencyCaps, Permit

__all__ = ["CapsGate", "Wake"]

log = logging.getLogger("herald.engine")

#: Lets one waiting job try again now; False if it is no longer waiting.
Wake = Callable[[], bool]
_MAX_WAITERS = 1024  # per cap: beyond, the ones no longer waiting are swept out


class CapsGate:
    """``holder``: this engine's id, named in every permit it takes."""

    def __init__(
        self,
        caps: ConcurrencyCaps,
        limits: Mapping[Platform, CapLimits],
        clock: Clock,
        *,
        holder: str,
        recheck_s: float | None = None,
        unavailable_wait_s: float = 1.0,
    ) -> None:
        self.caps = caps
        self._limits = {p: lim for p, lim in limits.items() if lim.any}
        self._clock = clock
        self._holder = holder
        self._recheck_s = recheck_s
        self._unavailable_wait_s = unavailable_wait_s
        self._held: dict[str, Permit] = {}  # by delivery id, until its request is over
        self._waiters: dict[str, deque[Wake]] = {}  # by cap key, oldest first
        self._holding = asyncio.Event()  # set once a permit is taken: the renewals start

    @property
    def held(self) -> int:
        return len(self._held)

    async def take(self, job: Job) -> CapsFull | None:
        """Take ``job``'s slots (None: taken, or it has no cap wider than the process), or
        say which caps are full and how long to wait at most."""
        limits = self._limits.get(job.delivery.platform)
        if limits is None or job.delivery.id in self._held:
            return None
        claims = cap_claims(job.delivery.platform, limits, job.channel.external_id)
        try:
            got = await self.caps.acquire(claims, self._holder, self._clock.time())
        except CapsError as exc:
            log.warning("caps.unavailable", extra={"error": str(exc)})
            return CapsFull(self._unavailable_wait_s)
        if isinstance(got, Permit):
            self._held[job.delivery.id] = got
            self._holding.set()
            return None
        if self._recheck_s is not None:
            return CapsFull(min(got.wait_s, self._recheck_s), got.keys)
        return got

    def wait(self, full: CapsFull, wake: Wake) -> None:
        """``wake`` lets the waiting job go as soon as a slot of one of ``full``'s caps is
        released in this process."""
        for key in full.keys:
            waiters = self._waiters.setdefault(key, deque())
            if len(waiters) >= _MAX_WAITERS:
                # Wakes of jobs that left (their timer ran) are tried and dropped.
                self._waiters[key] = waiters = deque(w for w in waiters if w())
            waiters.append(wake)

    async def release(self, job: Job) -> None:
        """``job``'s request is over: free its slots (idempotent) and wake a waiter of each."""
        permit = self._held.pop(job.delivery.id, None)
        if permit is None:
            return
        try:
            await self.caps.release([permit])
        except CapsError as exc:
            log.warning("caps.release_lost", extra={"error": str(exc), "delivery": job.delivery.id})
        for key in permit.keys:
            waiters = self._waiters.get(key)
            while waiters and not waiters.popleft()():
                pass  # that one left already: the next
            if waiters is not None and not waiters:
                del self._waiters[key]

    async def run(self) -> None:
        """Renew every held permit each third of a lease, until cancelled. Idle (no timer at
        all) while nothing is held, as it always is without caps wider than a process."""
        period_s = self.caps.lease_s / 3
        while True:
            await self._holding.wait()
            await asyncio.sleep(period_s)  # a computed deadline: the leases' third
            permits = list(self._held.values())
            if not permits:
                self._holding.clear()
                continue
            try:
                await self.caps.renew(permits, self._clock.time())
                # A permit released while it was being renewed may have been put back: free
                # it again rather than leave its slots taken for a lease.
                held = {p.id for p in self._held.values()}
                gone = [p for p in permits if p.id not in held]
                if gone:
                    await self.caps.release(gone)
            except CapsError as exc:
                log.warning("caps.renew_lost", extra={"error": str(exc), "permits": len(permits)})
