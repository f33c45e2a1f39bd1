"""Herald's exception tree.

Every error Herald raises on purpose derives from :class:`HeraldError`. Driver and HTTP errors
are translated at the boundary into the most specific class below, keeping the original as
``__cause__``.

    HeraldError
    ├── ConfigError                 bad or unsafe configuration
    ├── InvalidInput                bad input from a user or a caller (HTTP 422, CLI message)
    │   ├── ScheduleError           a publish time that cannot be used
    │   │   ├── UnknownTimeZone
    │   │   ├── NonexistentLocalTime    wall time inside a DST gap
    │   │   └── TimeInPast
    │   ├── ContentInvalid          content a platform would refuse (checked before storing)
    │   ├── InputErrors             several problems at once, each with its field (and line)
    │   ├── DatasetError            an export of past posts that cannot be read as asked
    │   │                           (herald.optimizer.errors, with OptimizerError)
    │   └── IdempotencyKeyReused    an Idempotency-Key sent again with another request
    ├── Unauthenticated             no valid API key (HTTP 401)
    ├── NotFound                    no such object (or not visible to the caller)
    ├── Conflict                    the object's current state forbids the request (HTTP 409)
    │   ├── IdempotencyKeyBusy      a request with this Idempotency-Key is in progress
    │   ├── IdempotencyAnswerLost   the request with this Idempotency-Key was done, but its
    │   │                           answer was not kept (or can no longer be read)
    │   ├── IdempotencyClaimLost    a retry took this request's Idempotency-Key over: the
    │                               request's writes are refused (rolled back)
    │   └── WorkspaceBusy           a workspace move waited too long for deliveries in
    │                               flight or imports to finish (nothing was copied)
    ├── ServiceUnavailable          the server cannot take the request now (no room on its
    │                               disk): ask again after ``retry_after_s`` (HTTP 503)
    ├── InvalidTransition           a delivery state change the state machine forbids
    ├── StoreError                  the store failed (corrupt data, a bug, a refused write...)
    │   └── StoreUnavailable        transient: connection lost, server restarting, locked;
    │                               the same call may succeed later (retried with back-off)
    ├── QueueError                  the work queue failed (or is closed)
    │   └── QueueUnavailable        transient: the queue's server cannot be reached
    ├── LimiterError                the rate limiter failed (a bug, a script refused)
    │   └── LimiterUnavailable      a shared limiter cannot be trusted now: its server is
    │                               away, or restarted and was not yet rebuilt; nothing is
    │                               admitted until it is (rebuilt from the store's attempts)
    ├── CapsError                   the concurrency caps failed (a bug, a script refused)
    │   └── CapsUnavailable         shared caps cannot be reached: no slot is granted until
    │                               they answer (a slot granted blind could over-admit)
    └── PlatformError               a platform refused a publish or could not be reached
        ├── RateLimited             the platform throttled us; wait ``retry_after`` seconds
        ├── AuthExpired             token expired or revoked: the channel needs re-authorisation
        ├── ContentRejected         permanent refusal of this content: never retried
        │   └── DuplicateRejected   refused as a repeat of a post that already exists
        ├── TransientPlatformError  temporary failure, safe to retry with backoff
        │   └── RequestNotSent      the request never reached the platform: not a try
        ├── OutcomeUnknown          the request was sent, the answer never came
        └── ReconcileUnsupported    the platform offers no way to look a post up
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AuthExpired",
    "CapsError",
    "CapsUnavailable",
    "ConfigError",
    "Conflict",
    "ContentInvalid",
    "ContentRejected",
    "DuplicateRejected",
    "EgressRefused",
    "FieldProblem",
    "HeraldError",
    "IdempotencyAnswerLost",
    "IdempotencyClaimLost",
    "IdempotencyKeyBusy",
    "IdempotencyKeyReused",
    "InputErrors",
    "InvalidInput",
    "InvalidTransition",
    "LimiterError",
    "LimiterUnavailable",
    "NonexistentLocalTime",
    "NotFound",
    "OutcomeUnknown",
    "PlatformError",
    "QueueError",
    "QueueUnavailable",
    "RateLimited",
    "ReconcileUnsupported",
    "RequestNotSent",
    "ScheduleError",
    "ServiceUnavailable",
    "StoreError",
    "StoreUnavailable",
    "TimeInPast",
    "TooManyRequests",
    "TransientPlatformError",
    "Unauthenticated",
    "UnknownTimeZone",
    "WorkspaceBusy",
]

#: Who a rate limit applies to: one channel (a Page, an account, a member) or the whole app.
LimitScope = Literal["channel", "app"]


class HeraldError(Exception):
    """Root of every error Herald raises on purpose."""


class ConfigError(HeraldError):
    """The configuration is invalid or unsafe."""


class InvalidInput(HeraldError):
    """Input from a caller is invalid. ``field`` names the offending field when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ScheduleError(InvalidInput):
    """A publish time cannot be used."""


class UnknownTimeZone(ScheduleError):
    """The IANA time-zone name is not known."""


class NonexistentLocalTime(ScheduleError):
    """The local wall time falls in a daylight-saving gap and does not exist."""


class TimeInPast(ScheduleError):
    """The publish time is further in the past than the allowed grace."""


class ContentInvalid(InvalidInput):
    """Content that the target platform would refuse, caught before it is stored."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One problem with one field of an input; ``line`` for rows of an imported file."""

    field: str | None
    message: str
    line: int | None = None


class InputErrors(InvalidInput):
    """Several problems with one input, reported together (nothing was stored)."""

    def __init__(self, message: str, problems: Sequence[FieldProblem]) -> None:
        first = problems[0].field if problems else None
        super().__init__(message, field=first)
        self.problems = tuple(problems)


class IdempotencyKeyReused(InvalidInput):
    """An ``Idempotency-Key`` already used, within its lifetime, for another request (another
    route, or another body): the key names one write, so the request is refused (HTTP 422)."""


class Unauthenticated(HeraldError):
    """The caller gave no API key, or one that is unknown or revoked."""


class Conflict(HeraldError):
    """The request cannot be applied to the object in its current state (e.g. cancelling a
    post that is already published). ``field`` names the offending field when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class IdempotencyKeyBusy(Conflict):
    """The first request with this ``Idempotency-Key`` is still being answered: ask again
    after ``retry_after_s`` seconds (HTTP 409 with ``Retry-After``) to get its answer."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IdempotencyAnswerLost(Conflict):
    """The first request with this ``Idempotency-Key`` did its work (its write committed), but
    its answer was not kept (the request failed or its process died afterwards), or can no
    longer be read (it was kept under a secret key since dropped). Doing the request again
    would do it twice, so it is not done: the caller reads the resource to see the result
    (HTTP 409)."""


class IdempotencyClaimLost(Conflict):
    """A store refused a write made under an ``Idempotency-Key`` that is no longer the
    request's: the request outlived its claim's lock and a retry took the key over, so the
    retry does the work and this request's write was rolled back (HTTP 409)."""


class WorkspaceBusy(Conflict):
    """A workspace could not be moved between regions: deliveries of it stayed in flight or
    imports of it unfinished for longer than the move was told to wait. Nothing was copied."""


class TooManyRequests(HeraldError):
    """A caller went over its request rate. ``headers`` tell it when to come back."""

    def __init__(self, message: str, *, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class ServiceUnavailable(HeraldError):
    """The server cannot take the request now, for want of something of its own (room on
    its disk to spool an upload): the same request may succeed after ``retry_after_s``."""

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class NotFound(HeraldError):
    """No such object, or one the caller may not see."""

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"{kind} {object_id!r} not found")
        self.kind = kind
        self.object_id = object_id


class EgressRefused(HeraldError):
    """Herald will not connect where a tenant pointed it (a media or webhook URL whose address
    is not public, and not allowed by the operator: :mod:`herald.egress`). The message never
    says what is behind the address."""


class InvalidTransition(HeraldError):
    """A delivery state change that the state machine forbids."""


class StoreError(HeraldError):
    """The store failed to read or write."""


class StoreUnavailable(StoreError):
    """The store could not be reached or asked to be asked again: the connection was lost, the
    server is shutting down or restarting, has no connection slot left, chose this transaction
    as a deadlock or serialization victim, or the database file is locked. Nothing about the
    call itself is wrong: the same call may succeed a moment later, so it is retried with
    back-off rather than treated as a failure."""


class QueueError(HeraldError):
    """The work queue failed."""


class QueueUnavailable(QueueError):
    """The queue's server could not be reached or did not answer in time. Nothing is lost:
    every job in a queue is a claimed delivery under a lease in the store, so the same call
    may be made again later, and jobs that never arrive are claimed again once their leases
    run out."""


class LimiterError(HeraldError):
    """The rate limiter failed."""


class LimiterUnavailable(LimiterError):
    """The limiter cannot say what the platforms still count: its server cannot be reached, or
    it lost its state (a restart) and has not been rebuilt from the store's attempts since.
    Admitting on an empty limiter would grant fresh quotas, so nothing is admitted until
    :meth:`~herald.types.RateLimiter.rebuild` has run; the caller waits and tries again."""


class CapsError(HeraldError):
    """The concurrency caps failed."""


class CapsUnavailable(CapsError):
    """Shared concurrency caps (Redis) cannot be reached. Nothing is granted meanwhile: a slot
    granted without counting the others' could put more requests in flight than a cap allows.
    The caller waits and asks again; slots already held run out with their leases."""


class PlatformError(HeraldError):
    """A platform call failed. ``code`` is the platform's own error code, when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.code = code
        self.status = status

    def __str__(self) -> str:
        parts = [self.message]
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.status is not None:
            parts.append(f"http={self.status}")
        return " ".join(parts)


class RateLimited(PlatformError):
    """The platform throttled us. Pause ``scope`` for ``retry_after`` seconds; not a failure.

    ``named`` is False when the platform said nothing of how long (no ``Retry-After``, no
    regain estimate, no known reset): ``retry_after`` is then the configured pause, and the
    engine lengthens it while such throttles keep coming.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        scope: LimitScope,
        platform: str = "",
        code: str | None = None,
        status: int | None = None,
        pause: bool = True,
        named: bool = True,
    ) -> None:
        super().__init__(message, platform=platform, code=code, status=status)
        self.retry_after = max(0.0, retry_after)
        self.scope: LimitScope = scope
        # False when Herald's own limiter said wait (not the platform): nothing to pause.
        self.pause = pause
        self.named = named


class AuthExpired(PlatformError):
    """The channel's token is expired, revoked or lacks a permission: it needs re-authorisation."""


class ContentRejected(PlatformError):
    """The platform refused this content for good; retrying cannot help."""


class DuplicateRejected(ContentRejected):
    """The platform refused the post as a repeat of one it already holds (Graph 506,
    LinkedIn 422 duplicate). After an earlier send of the same delivery, that post is most
    likely Herald's own: it is looked up rather than failed."""


class TransientPlatformError(PlatformError):
    """A temporary failure (5xx, connection refused before sending): safe to retry."""


class RequestNotSent(TransientPlatformError):
    """The request provably never reached the platform: the connection was refused, the name
    did not resolve, TLS failed, or no connection could be had, before a byte of it was
    written. The platform counted nothing and holds nothing: the delivery tries again without
    spending a retry, its limit units are given back, and no look-up is owed.

    ``partial``: earlier requests of the same publish or look-up did reach the platform (an
    upload before the final call, say). Those may have counted, so for the delivery it is an
    ordinary transient failure; it still says the platform cannot be reached.
    """

    def __init__(self, message: str, *, platform: str = "", partial: bool = False) -> None:
        super().__init__(message, platform=platform)
        self.partial = partial


class OutcomeUnknown(PlatformError):
    """The publish request was sent but no answer came: the post may or may not exist."""


class ReconcileUnsupported(PlatformError):
    """The platform offers no way to check whether a post already exists."""
