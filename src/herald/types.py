"""The plug-in points of Herald, one Protocol each, and the values that cross them.

- :class:`Store`: the source of truth (SQLite embedded, PostgreSQL at scale).
- :class:`JobQueue`: carries claimed deliveries from the dispatcher to the workers.
- :class:`RateLimiter`: decides when a request may go out without breaking a platform limit.
- :class:`Connector`: speaks one platform's publishing API.
- :class:`CredentialResolver`: turns a channel's ``credentials_ref`` into its secrets.

Every implementation of a Protocol passes the same contract test suite in ``tests/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from herald.domain import (
    Attempt,
    Channel,
    ChannelStatus,
    ClaimBatch,
    Content,
    Delivery,
    Job,
    NewPost,
    Platform,
    Post,
    Transition,
)
from herald.states import DeliveryState

if TYPE_CHECKING:
    from herald.limits.rules import LimitClaim

__all__ = [
    "Connector",
    "CredentialResolver",
    "Credentials",
    "JobQueue",
    "PlatformUsage",
    "PublishRequest",
    "Published",
    "RateLimiter",
    "Store",
]

#: A channel's secrets, e.g. ``{"access_token": "..."}``. Never logged.
Credentials = Mapping[str, str]


@runtime_checkable
class Store(Protocol):
    """Durable home of channels, posts and deliveries. All writes are atomic."""

    async def open(self) -> None:
        """Connect and bring the schema up to date (migrations)."""

    async def close(self) -> None: ...

    # -- catalogue --------------------------------------------------------------------------
    async def add_channels(self, channels: Sequence[Channel]) -> None: ...

    async def get_channel(self, channel_id: str) -> Channel:
        """Raise :class:`~herald.errors.NotFound` if there is no such channel."""

    async def list_channels(self) -> list[Channel]: ...

    async def set_channel_status(
        self, channel_id: str, status: ChannelStatus, *, credentials_ref: str | None = None
    ) -> None: ...

    async def add_posts(self, posts: Sequence[NewPost]) -> list[Delivery]:
        """Store posts and their deliveries in one transaction; return the deliveries."""

    async def get_post(self, post_id: str) -> Post: ...

    async def get_delivery(self, delivery_id: str) -> Delivery: ...

    async def list_deliveries(
        self, *, state: DeliveryState | None = None, limit: int = 1000, after_id: str = ""
    ) -> list[Delivery]:
        """Deliveries ordered by id, for paging: pass the last id seen as ``after_id``."""

    async def list_attempts(self, delivery_id: str) -> list[Attempt]: ...

    async def count_by_state(self) -> dict[DeliveryState, int]: ...

    # -- engine -----------------------------------------------------------------------------
    async def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, expire_before: datetime
    ) -> ClaimBatch:
        """Atomically claim up to ``limit`` due deliveries of active channels.

        Deliveries due before ``expire_before`` that owe no check are marked expired in the
        same transaction and returned apart, never claimed.
        """

    async def next_due_at(self) -> datetime | None:
        """The earliest ``next_attempt_at`` among claimable deliveries of active channels."""

    async def apply(self, transitions: Sequence[Transition]) -> list[bool]:
        """Write guarded state changes in one transaction; say which ones took effect."""

    async def extend_leases(self, claim_tokens: Sequence[str], lease_until: datetime) -> int:
        """Keep the leases of deliveries an engine still holds; return how many."""

    async def recover_expired_leases(self, now: datetime, *, every: bool = False) -> int:
        """Release deliveries whose lease ran out (``every``: all leased ones, for an engine
        that has the store to itself at start-up). Unsent ones become claimable again; ones
        that may have been sent become ``unconfirmed`` and are checked before any resend."""


@runtime_checkable
class JobQueue(Protocol):
    """Moves claimed deliveries to workers. Durability comes from the store's leases."""

    async def put(self, jobs: Sequence[Job]) -> None: ...

    async def get(self) -> Job:
        """Wait for the next job; raise :class:`~herald.errors.QueueError` once closed."""

    async def ack(self, job: Job) -> None:
        """The job is finished (its outcome is in the store)."""

    def depth(self) -> int:
        """Jobs waiting to be taken."""

    async def close(self) -> list[Job]:
        """Stop handing out jobs; return the ones never taken so they can be released."""


@runtime_checkable
class RateLimiter(Protocol):
    """Grants requests against platform limits so that none is ever exceeded."""

    async def reserve(
        self, claims: Sequence[LimitClaim], now: float, *, pauses: Sequence[str] = ()
    ) -> float:
        """Grant every claim at once, or none.

        Return 0.0 when granted (usage recorded), else how many seconds to wait before a new
        try could succeed (nothing recorded); ``math.inf`` if a claim can never fit. Keys in
        ``pauses`` that are blocked (see :meth:`block`) refuse the whole reservation. ``now``
        is Unix time in seconds.
        """

    async def refund(self, claims: Sequence[LimitClaim], granted_at: float) -> None:
        """Give back the units of refundable claims granted at ``granted_at`` (the request
        definitely failed and the platform counts only successes)."""

    async def block(self, key: str, until: float) -> None:
        """Refuse every claim on ``key`` until Unix time ``until`` (a platform told us so)."""

    async def blocked_until(self, key: str, now: float) -> float:
        """Unix time until which ``key`` is blocked, or 0.0."""


@dataclass(frozen=True, slots=True)
class PlatformUsage:
    """Usage a platform reported on a response, in percent of its limit (Graph API headers)."""

    app_pct: float | None = None
    channel_pct: float | None = None
    regain_after_s: float | None = None  # the platform's own estimate of when it lets us back


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """One publish (or look-up) of one delivery, as handed to a connector."""

    delivery_id: str
    channel: Channel
    credentials: Credentials
    content: Content
    attempt: int  # 1 for the first request sent for this delivery
    since: datetime  # when the uncertain attempt started; connectors allow for clock skew


@dataclass(frozen=True, slots=True)
class Published:
    external_id: str
    url: str | None = None
    usage: PlatformUsage | None = None


@runtime_checkable
class Connector(Protocol):
    """One platform's publishing API. Raises :class:`~herald.errors.PlatformError` subclasses."""

    platform: Platform

    def usage_of(self, content: Content) -> Mapping[str, int]:
        """What one publish of ``content`` consumes, per meter (``calls``, ``publishes``...)."""

    def lookup_usage(self) -> Mapping[str, int]:
        """What one :meth:`find` consumes, per meter."""

    def validate(self, content: Content) -> None:
        """Raise :class:`~herald.errors.ContentInvalid` for content this platform refuses."""

    async def publish(self, request: PublishRequest) -> Published:
        """Publish; raise ``OutcomeUnknown`` when the request left but no answer came."""

    async def find(self, request: PublishRequest) -> Published | None:
        """Look for the post this delivery may already have made; ``None`` if it is absent."""

    async def aclose(self) -> None: ...


@runtime_checkable
class CredentialResolver(Protocol):
    async def resolve(self, channel: Channel) -> Credentials:
        """Raise :class:`~herald.errors.AuthExpired` if the secrets cannot be had."""
