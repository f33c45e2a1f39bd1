"""Per-key request rate limits of the API: a tenant's burst must not slow the others.

Each API key has a GCRA budget (the generic cell rate algorithm: a steady ``rate_per_s`` and
a ``burst`` allowed at once, no timer, one number kept per key). A request over it answers
429 with ``Retry-After``; every answer carries ``RateLimit-Limit``, ``RateLimit-Remaining``
and ``RateLimit-Reset`` (the IETF RateLimit header fields), so a client can pace itself.

The budget lives in each API process: behind a load balancer spreading keys over N nodes, a
key gets up to N times the rate. Set the rate per node accordingly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["KeyRateLimits", "Verdict"]

_PRUNE_AT = 10_000  # keys remembered before those back at a full budget are forgotten


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int  # the burst
    remaining: int  # requests that could go at once now
    reset_s: float  # until the budget is full again
    retry_after_s: float  # until this request would be allowed (0 if it is)

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_s)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return out


class KeyRateLimits:
    """``rate_per_s`` requests a second per key, ``burst`` at once; ``rate_per_s`` 0: no limit."""

    def __init__(
        self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._burst = burst
        self._clock = clock
        self._tat: dict[str, float] = {}  # per key: its theoretical arrival time

    @property
    def enabled(self) -> bool:
        return self._interval > 0

    def take(self, key: str) -> Verdict:
        """Count one request of ``key``, if its budget allows it."""
        now = self._clock()
        window = self._burst * self._interval  # how far ahead of now the TAT may run
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + self._interval
        allowed = new_tat - now <= window + 1e-9
        if allowed:
            self._tat[key] = tat = new_tat
            if len(self._tat) > _PRUNE_AT:
                self._prune(now)
        ahead = tat - now
        return Verdict(
            allowed=allowed,
            limit=self._burst,
            remaining=max(0, math.floor((window - ahead) / self._interval + 1e-9)),
            reset_s=ahead,
            retry_after_s=0.0 if allowed else new_tat - now - window,
        )

    def _prune(self, now: float) -> None:
        self._tat = {key: tat for key, tat in self._tat.items() if tat > now}
