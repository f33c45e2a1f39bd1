"""The platforms' unkind habits that the demo's and the chaos run's fault profiles switch on,
and the engine settings that answer them.

- Every kind of call can fail, not only the one that creates a post (:func:`every_call`).
- A new post shows in its channel's listing late (:data:`LISTING_LAG`, up to 4 s here, where
  the platforms take seconds); Herald trusts a look-up that finds nothing only
  :data:`LISTING_SETTLE_S` after the uncertain request left.
- The duplicate checks miss some repeats and forget (:data:`DUPLICATE_CHECKS`): a resend the
  platform does refuse still counts as a duplicate in the judges' figures.
"""

from __future__ import annotations

from typing import Any

from herald.simulator import CallFaults, CallKind, ListingLag

__all__ = ["DUPLICATE_CHECKS", "LISTING_LAG", "LISTING_SETTLE_S", "every_call"]

LISTING_LAG = ListingLag(median_s=0.3, p99_s=2.0, max_s=4.0)
#: The longest listing lag, plus the time a request holds before its post exists.
LISTING_SETTLE_S = 6.0
#: Simulator overrides: Graph's check catches nine repeats in ten and forgets after six
#: hours; LinkedIn's nineteen in twenty within a day.
DUPLICATE_CHECKS: dict[str, dict[str, Any]] = {
    "facebook": {"duplicate_check": {"refuse_share": 0.9, "memory_s": 6 * 3600.0}},
    "linkedin": {"duplicate_check": {"refuse_share": 0.95, "memory_s": 86_400.0}},
}


def every_call(rates: CallFaults) -> dict[CallKind, CallFaults]:
    """``rates`` for every kind of call that creates no post."""
    return {kind: rates for kind in CallKind if kind is not CallKind.PUBLISH}
