"""The platforms' unkind habits that the demo's and the chaos run's fault profiles switch on,
and the engine settings that answer them.

- Every kind of call can fail, not only the one that creates a post (:func:`every_call`).
- A new post shows in its channel's listing late (:data:`LISTING_LAG`, up to 4 s here, where
  the platforms take seconds); Herald trusts a look-up that finds nothing only
  :data:`LISTING_SETTLE_S` after the uncertain send ended.
- The duplicate checks miss some repeats and forget (:data:`DUPLICATE_CHECKS`): a resend the
  platform does refuse still counts as a duplicate in the judges' figures.
- YouTube keeps the whole 256 KiB units of an upload cut part-way (:data:`VIDEO_BYTES` spans
  more than three of them, so a cut can leave some to resume from).
- Instagram throttles with its own codes (:data:`INSTAGRAM_THROTTLE_CODES`), 80002 with the
  account's usage header among them.
- Instagram is spoken to in a Graph version already retired (:func:`retired_graph_version`):
  Graph serves its calls with the oldest live version and says so, and Herald warns.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from herald.constants import GraphCode
from herald.domain import Platform
from herald.simulator import CallFaults, CallKind, FaultConfig, ListingLag
from herald.versions import GRAPH_RETIRES, graph_version

__all__ = [
    "DUPLICATE_CHECKS",
    "INSTAGRAM_THROTTLE_CODES",
    "LISTING_LAG",
    "LISTING_SETTLE_S",
    "VIDEO_BYTES",
    "every_call",
    "per_platform",
    "retired_graph_version",
    "speak_retired_graph",
]

LISTING_LAG = ListingLag(median_s=0.3, p99_s=2.0, max_s=4.0)
#: The longest listing lag, plus the time a request holds before its post exists.
LISTING_SETTLE_S = 6.0
#: Simulator overrides: Graph's check catches nine repeats in ten and forgets after six
#: hours; LinkedIn's nineteen in twenty within a day.
DUPLICATE_CHECKS: dict[str, dict[str, Any]] = {
    "facebook": {"duplicate_check": {"refuse_share": 0.9, "memory_s": 6 * 3600.0}},
    "linkedin": {"duplicate_check": {"refuse_share": 0.95, "memory_s": 86_400.0}},
}


#: A video of three whole 256 KiB units and part of a fourth: an upload cut part-way can leave
#: whole units on YouTube's side for Herald to resume from.
VIDEO_BYTES = 3 * 256 * 1024 + 12_345
#: Instagram's injected throttles: the app's hourly limit (4) and the account's Business Use
#: Case limit (80002, with the ``instagram`` usage header and the minutes to regain access).
INSTAGRAM_THROTTLE_CODES = (GraphCode.TOO_MANY_CALLS, GraphCode.INSTAGRAM_ACCOUNT_TOO_MANY_CALLS)


def per_platform(fault: FaultConfig) -> dict[Platform, FaultConfig]:
    """``fault`` on every platform, Instagram throttling with its own codes."""
    instagram = fault.model_copy(update={"graph_throttle_codes": INSTAGRAM_THROTTLE_CODES})
    return {p: instagram if p is Platform.INSTAGRAM else fault for p in Platform}


def retired_graph_version(today: date) -> str | None:
    """The newest Graph version retired by ``today`` (Herald's own dates); None before the
    first retirement Herald knows of."""
    retired = [v for v, day in GRAPH_RETIRES.items() if day <= today]
    return max(retired, key=lambda v: tuple(int(n) for n in v[1:].split(".")), default=None)


def speak_retired_graph(base_url: str, today: date) -> str:
    """Instagram's ``base_url`` with its version replaced by :func:`retired_graph_version`
    (unchanged when there is none)."""
    retired = retired_graph_version(today)
    spoken = graph_version(base_url)
    if retired is None or spoken is None:
        return base_url
    return f"{base_url.rstrip('/')[: -len(spoken) - 1]}/{retired}"


def every_call(rates: CallFaults) -> dict[CallKind, CallFaults]:
    """``rates`` for every kind of call that creates no post."""
    return {kind: rates for kind in CallKind if kind is not CallKind.PUBLISH}
