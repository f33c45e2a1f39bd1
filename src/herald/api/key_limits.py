"""Per-key request rate limits of the API: a tenant's burst must not slow the others.

Each API key has a GCRA budget (the generic cell rate algorithm, the one the limiter paces
platforms with: a steady ``rate_per_s`` and a ``burst`` allowed at once, one number per key).
A request over it answers 429 with ``Retry-After``; every answer carries ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset`` (the IETF RateLimit header fields), so a
client can pace itself.

The budget lives in each API process: behind a load balancer spreading keys over N nodes, a
key gets up to N times the rate. Set the rate per node accordingly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from herald.limits.memory import Gcra
from herald.limits.rules import Pacing

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
    """``rate_per_s`` requests a second per key, ``burst`` at once; ``rate_per_s`` 0: no limit.
    Each key is paced by the limiter's own GCRA (:class:`herald.limits.memory.Gcra`)."""

    def __init__(
        self, rate_per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rule = Pacing(rate_per_s, burst) if rate_per_s > 0 else None
        self._clock = clock
        self._keys: dict[str, Gcra] = {}

    @property
    def enabled(self) -> bool:
        return self._rule is not None

    def take(self, key: str) -> Verdict:
        """Count one request of ``key``, if its budget allows it."""
        rule = self._rule
        if rule is None:
            raise RuntimeError("no request rate is configured")
        now = self._clock()
        pace = self._keys.setdefault(key, Gcra())
        wait_s = pace.wait(rule, 1, now)
        if wait_s <= 0:
            pace.record(rule, 1, now)
            if len(self._keys) > _PRUNE_AT:
                self._prune(now)
        interval = 1.0 / rule.rate_per_s
        ahead = max(0.0, pace.tat - now)  # how far its budget is spent, in time
        return Verdict(
            allowed=wait_s <= 0,
            limit=rule.burst,
            remaining=max(0, math.floor((rule.burst * interval - ahead) / interval + 1e-9)),
            reset_s=ahead,
            retry_after_s=wait_s,
        )

    def _prune(self, now: float) -> None:
        self._keys = {key: pace for key, pace in self._keys.items() if pace.tat > now}
