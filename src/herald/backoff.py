"""Retry delays: exponential backoff with full jitter.

Full jitter (a uniform draw between zero and the exponential ceiling) spreads the retries of
many deliveries that failed together, so a platform that hiccuped is not hit by a synchronised
wave when it recovers.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "ceiling", "full_jitter"]


def ceiling(retry: int, *, base_s: float, cap_s: float) -> float:
    """The largest delay for the ``retry``-th retry (1-based): ``min(cap, base * 2**(retry-1))``."""
    if retry < 1:
        raise ValueError("retry numbers start at 1")
    # Cap the exponent so huge retry counts cannot overflow a float.
    return min(cap_s, base_s * 2.0 ** min(retry - 1, 62))


def full_jitter(
    retry: int, *, base_s: float, cap_s: float, rng: random.Random | None = None
) -> float:
    """A delay drawn uniformly from ``[0, ceiling(retry)]``."""
    top = ceiling(retry, base_s=base_s, cap_s=cap_s)
    return (rng or random).uniform(0.0, top)


class Backoff:
    """The consecutive failures of one loop, and the full-jitter delay after each.

    A loop that finds a dependency away (the store, a receiver) waits :meth:`next_s` before
    trying again, longer each time up to ``cap_s``, and calls :meth:`reset` once it answers.
    """

    def __init__(self, *, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0
        self._rng = rng

    def next_s(self) -> float:
        """Count one more failure; how long to wait before the next try."""
        self.failures += 1
        return full_jitter(self.failures, base_s=self.base_s, cap_s=self.cap_s, rng=self._rng)

    def reset(self) -> None:
        self.failures = 0
