"""Retry delays: exponential backoff with full jitter.

Full jitter (a uniform draw between zero and the exponential ceiling) spreads the retries of
many deliveries that failed together, so a platform that hiccuped is not hit by a synchronised
wave when it recovers.
"""

from __future__ import annotations

import random

__all__ = ["ceiling", "full_jitter"]


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
