"""The delivery state machine: the one place that says which state changes are allowed.

    scheduled ──► claimed ──► publishing ──► published
        ▲  │         │  │          │
        │  │         │  │          ├──► retry_wait ──► claimed ...
        │  │         │  │          ├──► failed
        │  │         │  │          └──► unconfirmed ──► claimed (check first) ...
        │  │         │  └─► published (a check found the post)
        │  │         └──► scheduled / retry_wait / unconfirmed (released unsent)
        │  └──► expired, cancelled
        └── failed / unconfirmed (explicit user retry)

``publishing`` is written, durably, *before* the request leaves: a delivery found in that
state after a crash may have been published, so it becomes ``unconfirmed`` and is checked
against the platform before anything is sent again.
"""

from __future__ import annotations

from enum import StrEnum

from herald.errors import InvalidTransition

__all__ = [
    "CANCELLABLE",
    "CLAIMABLE",
    "DROPPED",
    "FINAL",
    "IN_FLIGHT",
    "UNRESOLVED",
    "DeliveryState",
    "allowed_sources",
    "check_transition",
]


class DeliveryState(StrEnum):
    SCHEDULED = "scheduled"  # waiting for its due time
    CLAIMED = "claimed"  # leased by a dispatcher, nothing sent yet
    PUBLISHING = "publishing"  # a publish request may be on the wire
    PUBLISHED = "published"  # the platform holds the post; external id recorded
    RETRY_WAIT = "retry_wait"  # failed transiently or was throttled; due again at next_attempt_at
    FAILED = "failed"  # permanent refusal or retries used up
    EXPIRED = "expired"  # too late to publish (max_lateness); never sent
    UNCONFIRMED = "unconfirmed"  # outcome unknown: must be checked before any resend
    CANCELLED = "cancelled"  # withdrawn by the user before publishing


S = DeliveryState

_TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    S.SCHEDULED: frozenset({S.CLAIMED, S.CANCELLED, S.EXPIRED, S.SCHEDULED}),
    S.RETRY_WAIT: frozenset({S.CLAIMED, S.CANCELLED, S.EXPIRED, S.SCHEDULED}),
    S.CLAIMED: frozenset(
        {
            S.PUBLISHING,
            S.PUBLISHED,  # a check before resending found the post
            S.SCHEDULED,  # released unsent (shutdown, long rate-limit wait)
            S.RETRY_WAIT,
            S.UNCONFIRMED,  # released unsent while a check is still owed
            S.EXPIRED,
            S.CANCELLED,
            S.FAILED,  # content that can never be sent (caught at the last moment)
        }
    ),
    S.PUBLISHING: frozenset({S.PUBLISHED, S.RETRY_WAIT, S.FAILED, S.UNCONFIRMED}),
    S.UNCONFIRMED: frozenset({S.CLAIMED, S.CANCELLED, S.SCHEDULED, S.EXPIRED, S.PUBLISHED}),
    S.FAILED: frozenset({S.SCHEDULED}),
    S.PUBLISHED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}

#: States from which the dispatcher may claim a delivery (when ``next_attempt_at`` is due).
CLAIMABLE: frozenset[DeliveryState] = frozenset({S.SCHEDULED, S.RETRY_WAIT, S.UNCONFIRMED})
#: States a user may cancel from: everything not yet published nor finished. A claimed one
#: too; the engine's next guarded write for it then fails and nothing is sent.
CANCELLABLE: frozenset[DeliveryState] = frozenset(
    {S.SCHEDULED, S.RETRY_WAIT, S.CLAIMED, S.UNCONFIRMED}
)
#: States held by a live engine under a lease.
IN_FLIGHT: frozenset[DeliveryState] = frozenset({S.CLAIMED, S.PUBLISHING})
#: States that need nothing more from the engine.
FINAL: frozenset[DeliveryState] = frozenset({S.PUBLISHED, S.FAILED, S.EXPIRED, S.CANCELLED})
#: States that ended without anything sent: their due times are free for other posts again.
DROPPED: frozenset[DeliveryState] = frozenset({S.EXPIRED, S.CANCELLED})
#: States a delivery may be in while its last send has no recorded outcome (``check_since``):
#: claimed for a look-up, publishing, or owing a look-up.
UNRESOLVED: frozenset[DeliveryState] = frozenset({S.CLAIMED, S.PUBLISHING, S.UNCONFIRMED})

_SOURCES: dict[DeliveryState, frozenset[DeliveryState]] = {
    target: frozenset(src for src, targets in _TRANSITIONS.items() if target in targets)
    for target in DeliveryState
}


def check_transition(source: DeliveryState, target: DeliveryState) -> None:
    """Raise :class:`InvalidTransition` unless ``source -> target`` is allowed."""
    if target not in _TRANSITIONS[source]:
        raise InvalidTransition(f"delivery cannot go from {source.value} to {target.value}")


def allowed_sources(target: DeliveryState) -> frozenset[DeliveryState]:
    """Every state from which ``target`` may be entered: the guard stores use in writes."""
    return _SOURCES[target]
