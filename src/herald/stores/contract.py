"""What every store does alike, written once for all of them (memory, SQLite, PostgreSQL).

- :func:`applied`: what a guarded transition does to a delivery. The memory store applies it;
  the SQL stores' statements reproduce it, which tests/suites/transition_table.py checks for
  every (state, transition) pair. Whether a transition applies at all is
  :func:`herald.states.allowed_sources`' to say.
- The keyword arguments of the protocols' longer signatures, as typed dicts: the stores take
  them as ``**kwargs: Unpack[...]``, so they do not restate :mod:`herald.types` (mypy still
  checks each store against it), and read a post listing through :class:`PostQuery`, where
  its defaults live.
- :func:`by_post`: deliveries grouped by post, in the order every store returns them.
- :func:`new_claim_token`: the token of a claim or of claims handed over.
- :func:`abandoned_send`: the attempt a recovery records for a send left on the wire; the SQL
  stores' recoveries write the same row (:data:`ABANDONED_ERROR` is filled into their SQL).
- :class:`KeyRecord` and :func:`judge_key`: an idempotency key's row, and what a request that
  could not claim it is told. Whether a row can be claimed is :func:`key_claimable`'s to say;
  the SQL stores' claiming statement (``begin_idempotent``) repeats it in its WHERE clause.
- :func:`lost_import`: the error of a write for an import job its runner no longer holds.
  (A delivery an import stored and has not made due yet is :attr:`Delivery.held
  <herald.domain.Delivery.held>`: no transition with ``unheld`` touches it.)
- :func:`claim_lost`: what a write made under a key claim that is no longer the request's
  raises (:mod:`herald.keyclaim`); the SQL stores learn it from their mark of the key
  (``mark_idempotent``, with :func:`mark_values`).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, NotRequired, TypedDict

from herald.constants import IDEMPOTENCY_KEY_HEADER
from herald.domain import Attempt, Delivery, Transition
from herald.errors import Conflict, IdempotencyClaimLost
from herald.keyclaim import KeyClaim
from herald.states import DeliveryState
from herald.types import KeyBusy, KeyDone, KeyMismatch, KeyStart, KeyUnanswered, StoredResponse

__all__ = [
    "ABANDONED_ERROR",
    "ClaimRequest",
    "KeyRecord",
    "KeyState",
    "PostFilters",
    "PostQuery",
    "StatusChange",
    "abandoned_send",
    "applied",
    "by_post",
    "claim_lost",
    "first_id_of_day",
    "judge_key",
    "key_claimable",
    "lost_import",
    "mark_values",
    "new_claim_token",
    "start_of_day",
]

S = DeliveryState


def new_claim_token() -> str:
    """Unguessable, so a stale holder cannot write with a token it never had."""
    return secrets.token_hex(12)


ABANDONED_ERROR = "the engine holding the delivery stopped while its request was in flight"


def applied(delivery: Delivery, t: Transition, now: datetime) -> Delivery:
    """``delivery`` after transition ``t``, written at ``now``."""
    check_first = delivery.check_first if t.check_first is None else t.check_first
    # check_since bounds the look-up: it stays while a check is owed and is renewed by each send.
    keep_since = check_first or t.target is S.PUBLISHING
    return replace(
        delivery,
        state=t.target,
        due_at=t.due_at or delivery.due_at,
        next_attempt_at=t.next_attempt_at,
        external_id=t.external_id or delivery.external_id,
        last_error=t.error,
        attempts=delivery.attempts + (1 if t.sent else 0),
        retries=0 if t.reset_retries else delivery.retries + (1 if t.retry_spent else 0),
        checks=(
            0
            if t.reset_retries or t.check_first is False
            else delivery.checks + (1 if t.check_failed else 0)
        ),
        check_first=check_first,
        check_since=(t.check_since or delivery.check_since) if keep_since else None,
        reconciled=t.reconciled if t.target is S.PUBLISHED else delivery.reconciled,
        published_at=t.published_at or delivery.published_at,
        updated_at=now,
    )


def abandoned_send(delivery: Delivery, now: datetime) -> Attempt:
    """The attempt recorded when a recovery finds ``delivery`` still ``publishing``: its send
    may have reached the platform, which counted it whatever a look-up finds later, so it is
    kept as a request of its own (number and start of the send) for the limiter's replay."""
    started = delivery.check_since or delivery.updated_at or now
    return Attempt(delivery.id, delivery.attempts, started, now, "abandoned", ABANDONED_ERROR)


def by_post(post_ids: Sequence[str], deliveries: Iterable[Delivery]) -> dict[str, list[Delivery]]:
    """The deliveries of each of ``post_ids``, soonest due first (then by id); others left out."""
    grouped: dict[str, list[Delivery]] = {p: [] for p in post_ids}
    for delivery in sorted(deliveries, key=lambda d: (d.due_at, d.id)):
        if delivery.post_id in grouped:
            grouped[delivery.post_id].append(delivery)
    return grouped


class ClaimRequest(TypedDict):
    """Of :meth:`herald.types.EngineStore.claim_due`."""

    now: datetime
    limit: int
    lease_until: datetime
    expire_before: datetime
    engine_id: NotRequired[str | None]


class StatusChange(TypedDict, total=False):
    """Of :meth:`herald.types.EngineStore.set_channel_status`."""

    credentials_ref: str | None
    event: str | None


class PostFilters(TypedDict, total=False):
    """Of :meth:`herald.types.Catalog.list_posts`."""

    state: DeliveryState | None
    channel_id: str | None
    due_from: datetime | None
    due_to: datetime | None
    after: tuple[datetime, str] | None
    limit: int
    with_held: bool


@dataclass(frozen=True, slots=True)
class PostQuery:
    """One page of a workspace's posts, as :meth:`herald.types.Catalog.list_posts` asks."""

    workspace_id: str
    state: DeliveryState | None = None
    channel_id: str | None = None
    due_from: datetime | None = None
    due_to: datetime | None = None
    after: tuple[datetime, str] | None = None
    limit: int = 50
    with_held: bool = True  # False: without posts an import holds (Delivery.held)

    @property
    def filtered(self) -> bool:
        """Whether only posts with a delivery matching the filters are wanted."""
        filters = (self.state, self.channel_id, self.due_from, self.due_to)
        return any(value is not None for value in filters)


#: An idempotency key's state (see :meth:`herald.types.Catalog.begin_idempotent`).
KeyState = Literal["in_progress", "committed", "done"]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """An idempotency key's row: the request that claimed it (its fingerprint, its claim's
    token, when and until when it holds the key), how far its work went and, once answered,
    its answer."""

    fingerprint: str
    token: str
    created_at: datetime
    locked_until: datetime
    expires_at: datetime
    state: KeyState = "in_progress"
    response: StoredResponse | None = None  # kept once done


def key_claimable(record: KeyRecord | None, fingerprint: str, now: datetime) -> bool:
    """Whether a request with ``fingerprint`` may claim the key at ``now``: no row, an expired
    row, or a row left ``in_progress`` past its lock by the same request (its process died, or
    it is slow: with the key taken over, its writes are refused). Never a ``committed`` row
    within its lifetime: its work was done."""
    if record is None or record.expires_at <= now:
        return True
    stale = record.state == "in_progress" and record.locked_until <= now
    return stale and record.fingerprint == fingerprint


def judge_key(record: KeyRecord, fingerprint: str, now: datetime) -> KeyStart:
    """What a request with ``fingerprint`` that could not claim the key at ``now`` is told."""
    if record.fingerprint != fingerprint:
        return KeyMismatch()
    if record.response is not None:
        return KeyDone(record.response)
    if record.state == "committed" and record.locked_until <= now:
        return KeyUnanswered()
    return KeyBusy(record.locked_until)


def lost_import(import_id: str, runner: str | None) -> Conflict:
    """What a write for import ``import_id`` raises once ``runner`` no longer holds it."""
    return Conflict(f"import {import_id!r} is no longer held by runner {runner!r}")


def mark_values(claim: KeyClaim) -> dict[str, str]:
    """The parameters of the SQL stores' mark of ``claim``'s key (``mark_idempotent``)."""
    return {"workspace_id": claim.workspace_id, "key": claim.key, "token": claim.token}


def claim_lost() -> IdempotencyClaimLost:
    """The refusal of a write made under a key claim that is no longer the request's."""
    return IdempotencyClaimLost(
        f"this request outlived its hold on its {IDEMPOTENCY_KEY_HEADER}, and a retry with the "
        "key took it over and does the work: nothing of this request was stored",
        field=IDEMPOTENCY_KEY_HEADER,
    )


def start_of_day(at: datetime) -> datetime:
    """Midnight UTC of ``at``'s day."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def first_id_of_day(prefix: str, at: datetime) -> str:
    """No id :func:`herald.domain.new_id` made on ``at``'s UTC day sorts before this one: ids
    begin with the millisecond they were made, so a day's rows are a range of an id index."""
    millis = int(start_of_day(at).timestamp() * 1000)
    return f"{prefix}_{millis:012x}"
