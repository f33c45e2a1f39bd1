"""The domain vocabulary: channels, posts, deliveries, attempts and the work items built from them.

A *post* is what the user wrote; a *delivery* is that post on one channel, the unit that is
scheduled, published, retried and reported. All instants are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time
from enum import StrEnum
from time import time_ns
from typing import Any

from herald.errors import FieldProblem
from herald.states import DeliveryState

__all__ = [
    "DEFAULT_WORKSPACE",
    "REPLAYABLE_EVENTS",
    "ApiKey",
    "Attempt",
    "Channel",
    "ChannelStatus",
    "ClaimBatch",
    "Content",
    "ContentOverride",
    "Delivery",
    "ImportJob",
    "ImportState",
    "Job",
    "KeyHome",
    "Media",
    "MediaKind",
    "NewDelivery",
    "NewPost",
    "Platform",
    "Post",
    "PostingSlot",
    "SentRecord",
    "Transition",
    "Webhook",
    "WebhookEvent",
    "WebhookEventRecord",
    "WebhookEventState",
    "WebhookHealth",
    "Workspace",
    "WorkspaceHome",
    "new_id",
    "utcnow",
]


#: The workspace of channels and posts created without one (the embedded, single-tenant use).
DEFAULT_WORKSPACE = "ws_default"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _present(**fields: Any) -> dict[str, Any]:
    """``fields`` without the absent (None) ones, in the order given: stored JSON stays small
    and reads back to the same object."""
    return {name: value for name, value in fields.items() if value is not None}


def new_id(prefix: str) -> str:
    """A URL-safe identifier such as ``dlv_019c3f2a8b1e4c07d2...``: 12 hex digits of the
    millisecond it was made (UTC), then 80 random bits, as unguessable across tenants as the
    fully random ids made before.

    The time comes first so that ids made one after the other sort next to each other: every
    index keyed by an id (the primary keys, ``deliveries (post_id)``, ``(state, id)``...) takes
    a batch of new rows on its last few pages. Random ids land on a random page each, and once
    an index outgrows the database's page cache every insert reads and rewrites pages all over
    it. Ids are compared only as text; none is parsed, and ids made before (20 random hex
    digits) stay valid.
    """
    return f"{prefix}_{time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


class Platform(StrEnum):
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"
    LINKEDIN = "linkedin"
    YOUTUBE = "youtube"


class ChannelStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"  # the platform refused the token; deliveries wait for the user
    DISABLED = "disabled"  # switched off by the user; deliveries wait


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class Media:
    """A media file on a public URL (platforms such as Instagram fetch it themselves)."""

    url: str
    kind: MediaKind
    alt_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _present(url=self.url, kind=self.kind.value, alt_text=self.alt_text)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Media:
        return cls(url=raw["url"], kind=MediaKind(raw["kind"]), alt_text=raw.get("alt_text"))


@dataclass(frozen=True, slots=True)
class Content:
    """What is published. ``title`` is used where a platform wants one (YouTube)."""

    text: str = ""
    link: str | None = None
    media: tuple[Media, ...] = ()
    title: str | None = None

    def fingerprint(self) -> str:
        """A stable digest of the content, used to recognise the post on the platform."""
        digest = hashlib.sha256()
        for part in (self.title or "", self.text, self.link or ""):
            digest.update(part.encode())
            digest.update(b"\x00")
        for item in self.media:
            digest.update(item.url.encode())
            digest.update(b"\x00")
        return digest.hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        media = [m.to_dict() for m in self.media] or None
        return _present(text=self.text, link=self.link, media=media, title=self.title)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Content:
        return cls(
            text=raw.get("text", ""),
            link=raw.get("link"),
            media=tuple(Media.from_dict(m) for m in raw.get("media", ())),
            title=raw.get("title"),
        )


@dataclass(frozen=True, slots=True)
class ContentOverride:
    """Per-platform replacement of some content fields; ``None`` keeps the post's own value."""

    text: str | None = None
    link: str | None = None
    media: tuple[Media, ...] | None = None
    title: str | None = None

    def apply(self, base: Content) -> Content:
        return Content(
            text=base.text if self.text is None else self.text,
            link=base.link if self.link is None else self.link,
            media=base.media if self.media is None else self.media,
            title=base.title if self.title is None else self.title,
        )

    def to_dict(self) -> dict[str, Any]:
        media = None if self.media is None else [m.to_dict() for m in self.media]
        return _present(text=self.text, link=self.link, media=media, title=self.title)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ContentOverride:
        media = raw.get("media")
        return cls(
            text=raw.get("text"),
            link=raw.get("link"),
            media=None if media is None else tuple(Media.from_dict(m) for m in media),
            title=raw.get("title"),
        )


@dataclass(frozen=True, slots=True)
class Channel:
    """A social account Herald publishes to: a Facebook Page, an IG account, a member, ..."""

    id: str
    platform: Platform
    external_id: str  # the platform's id: Page id, IG user id, author URN, YouTube channel id
    name: str
    timezone: str  # IANA name, e.g. "Europe/Paris"
    credentials_ref: str  # where the token lives; see herald.service.credentials
    status: ChannelStatus = ChannelStatus.ACTIVE
    workspace_id: str = DEFAULT_WORKSPACE
    deleted_at: datetime | None = None  # deleted channels keep their history, unseen
    #: Where its deliveries are published from: only workers of this region take them. None:
    #: the deployment's region (``Settings.region``), so one-region deployments never set it.
    region: str | None = None

    def region_or(self, default: str) -> str:
        return self.region or default


@dataclass(frozen=True, slots=True)
class Post:
    id: str
    content: Content
    overrides: Mapping[Platform, ContentOverride] = field(default_factory=dict)
    created_at: datetime = field(default_factory=utcnow)
    workspace_id: str = DEFAULT_WORKSPACE

    def content_for(self, platform: Platform) -> Content:
        override = self.overrides.get(platform)
        return self.content if override is None else override.apply(self.content)


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    channel_id: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class NewPost:
    """A post to store together with one delivery per target channel."""

    post: Post
    deliveries: tuple[NewDelivery, ...]

    @classmethod
    def at(cls, post: Post, targets: Iterable[tuple[str, str]], due_at: datetime) -> NewPost:
        """Every target (delivery id, channel id) due at the same instant."""
        return cls(post, tuple(NewDelivery(d, c, due_at) for d, c in targets))

    @property
    def targets(self) -> tuple[tuple[str, str], ...]:
        return tuple((d.id, d.channel_id) for d in self.deliveries)

    @property
    def due_at(self) -> datetime:
        return min(d.due_at for d in self.deliveries)


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    post_id: str
    channel_id: str
    platform: Platform
    due_at: datetime
    state: DeliveryState = DeliveryState.SCHEDULED
    next_attempt_at: datetime | None = None  # when it may be claimed; None: nothing planned
    attempts: int = 0  # publish requests sent so far
    retries: int = 0  # transient failures spent from the retry budget
    checks: int = 0  # look-ups that failed (platform errors) while a check is owed
    check_first: bool = False  # the last send had an unknown outcome: look before resending
    check_since: datetime | None = None  # the platform post, if any, is not older than this
    external_id: str | None = None
    reconciled: bool = False  # published status was established by looking the post up
    last_error: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None

    def with_state(self, state: DeliveryState, **changes: Any) -> Delivery:
        return replace(self, state=state, **changes)

    @property
    def held(self) -> bool:
        """Stored by a CSV import that has not made it due yet (:class:`ImportJob`):
        ``scheduled`` with no next attempt, which no claim picks, and never tried. Nothing
        else leaves a delivery so (every other way into ``scheduled`` sets a next attempt);
        the SQL stores test the same three columns."""
        return (
            self.state is DeliveryState.SCHEDULED
            and self.next_attempt_at is None
            and self.attempts == 0
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One publish request (or one look-up) for a delivery, with its outcome.

    ``abandoned``: the engine stopped or died with the publish request on the wire and the
    delivery was handed back or recovered; ``started_at`` is when the request was about to
    leave. A look-up carries the number of the send it looks for.
    """

    delivery_id: str
    number: int
    started_at: datetime
    finished_at: datetime
    # published | found | not_found | rate_limited | auth | rejected | transient | unknown |
    # not_sent (the request never reached the platform) | check_failed | duplicate |
    # abandoned (a send on the wire when its engine stopped or died)
    outcome: str
    error: str | None = None
    # A look-up's listing pages after the first, as reserved against the limits, per meter
    # (``{"calls": 3}``): the platform counted them too. Empty for a publish.
    page_usage: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SentRecord:
    """One request the store knows was sent, publish or look-up: what the rate limiter is
    rebuilt from when an engine starts (:meth:`herald.types.EngineStore.sent_since`)."""

    delivery_id: str
    number: int  # the attempt's number: a look-up carries the number of the send it looks for
    platform: Platform
    channel_external_id: str  # the account whose limits the request counted against
    started_at: datetime
    # An attempt's outcome; None for a send whose outcome is not recorded (the request is on
    # the wire, or its engine stopped or died before the answer): ``started_at`` is when the
    # delivery entered ``publishing``.
    outcome: str | None
    content: Content  # what was sent: the post's content with the platform's override
    page_usage: Mapping[str, int] = field(default_factory=dict)  # a look-up's further pages


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery with everything a worker needs to publish it."""

    delivery: Delivery
    channel: Channel
    content: Content
    claim_token: str


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    jobs: list[Job]
    expired: list[Delivery]  # deliveries found too late and marked expired while claiming


@dataclass(frozen=True, slots=True)
class Transition:
    """A guarded state change of one delivery, written by :meth:`Store.apply`.

    The write happens only if the delivery is in one of the states from which ``target`` is
    allowed and, when ``claim_token`` is set, still holds that claim. That compare-and-set is
    what stops two engines, or a stale one, from acting on the same delivery.
    """

    delivery_id: str
    target: DeliveryState
    claim_token: str | None = None
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    external_id: str | None = None
    error: str | None = None
    sent: bool = False  # this change records a request going out: attempts += 1
    retry_spent: bool = False  # retries += 1
    check_failed: bool = False  # checks += 1
    check_first: bool | None = None  # None leaves the flag unchanged
    check_since: datetime | None = None
    reconciled: bool = False
    published_at: datetime | None = None
    reset_retries: bool = False  # an explicit user retry starts a fresh retry budget
    due_at: datetime | None = None  # a reschedule moves the due time itself
    attempt: Attempt | None = None
    event: str | None = None  # webhook event to record with the change, e.g. delivery.published
    # Only if no engine holds the delivery: a user's reschedule or retry must not take a
    # delivery out of an engine's hands (a cancel may: the engine's next write then fails).
    unclaimed: bool = False
    # Only if no import holds the delivery (Delivery.held): a user's change must not make
    # due, or cancel, a delivery of an import that may still be removed whole.
    unheld: bool = False


@dataclass(frozen=True, slots=True)
class Workspace:
    """A tenant: its channels, posts, keys and webhooks are invisible to every other one."""

    id: str
    name: str
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class WorkspaceHome:
    """Where a workspace lives, as the global directory knows it: its id and home region,
    nothing of its content. ``moving_to`` is set while ``herald admin move-workspace`` copies
    it to another region: meanwhile its API requests are refused, never served from a copy."""

    workspace_id: str
    region: str
    created_at: datetime = field(default_factory=utcnow)
    moving_to: str | None = None


@dataclass(frozen=True, slots=True)
class KeyHome:
    """An API key as the global directory knows it: enough to find (and, for a redirect,
    check) the key's workspace and region without reading any region's database."""

    prefix: str
    key_id: str
    workspace_id: str
    region: str
    digest: str  # SHA-256 of the key's secret, as the region's database keeps it
    revoked: bool = False
    moving_to: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public part; the secret is kept only as a hash."""

    id: str
    workspace_id: str
    prefix: str  # shown in listings, used to find the key
    name: str
    created_at: datetime = field(default_factory=utcnow)
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PostingSlot:
    """A weekly posting time in the channel's own zone (Buffer-style queues)."""

    weekday: int  # 0 = Monday ... 6 = Sunday
    time: time  # local wall time, naive


@dataclass(frozen=True, slots=True)
class Webhook:
    """A subscription. ``disabled_at``: switched off after failing too long (events for it are
    kept, unsent, until its owner enables it again), with ``disabled_reason``.
    ``failing_since``: every attempt since then failed (None: the last one went through)."""

    id: str
    workspace_id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime = field(default_factory=utcnow)
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event to send to one webhook (the outbox row written with the state change)."""

    id: str
    webhook_id: str
    workspace_id: str
    event: str
    payload: Mapping[str, Any]
    attempts: int = 0
    created_at: datetime = field(default_factory=utcnow)


class WebhookEventState(StrEnum):
    PENDING = "pending"  # waiting for its (next) attempt, or for its webhook to be enabled
    SENDING = "sending"  # claimed by a sender, under a lease
    SENT = "sent"  # a receiver answered 2xx
    FAILED = "failed"  # every attempt used (or its webhook deleted): kept, can be replayed


#: Finished events, which their owner may send again (a replay); one pending or sending is on
#: its way already.
REPLAYABLE_EVENTS: frozenset[WebhookEventState] = frozenset(
    {WebhookEventState.SENT, WebhookEventState.FAILED}
)


@dataclass(frozen=True, slots=True)
class WebhookEventRecord:
    """An outbox event as its owner sees it: where it stands and how its last attempt went."""

    event: WebhookEvent
    state: WebhookEventState
    last_error: str | None = None
    next_attempt_at: datetime | None = None  # pending: when it is due
    last_attempt_at: datetime | None = None  # when its last attempt was claimed
    finished_at: datetime | None = None  # when it became sent or failed


@dataclass(frozen=True, slots=True)
class WebhookHealth:
    """How a webhook's attempts went lately: ``failures`` in a row since ``failing_since``
    (0 and None after an attempt that went through)."""

    failures: int = 0
    failing_since: datetime | None = None


class ImportState(StrEnum):
    """Where a CSV import job is: waiting, reading and checking the whole file, storing its
    posts, or done (every post stored and made due; or nothing stored, with the reasons)."""

    QUEUED = "queued"
    VALIDATING = "validating"
    WRITING = "writing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (ImportState.SUCCEEDED, ImportState.FAILED)


@dataclass(frozen=True, slots=True)
class ImportJob:
    """A CSV import run in the background (herald.service.imports), as the store keeps it.

    ``runner`` is the process working on it, which holds it until ``lease_until`` and renews
    that lease while it works; another process takes over a job whose lease ran out. Until
    ``committed``, the job's posts are stored *held* (their deliveries not claimable) and a
    take-over removes them: nothing of an interrupted import is left. Once ``committed``
    (every post stored), a take-over finishes the job instead.
    """

    id: str
    workspace_id: str
    state: ImportState = ImportState.QUEUED
    rows_total: int | None = None  # the file's rows, once read to its end
    rows_validated: int = 0
    posts_written: int = 0
    deliveries: int = 0  # of the rows validated so far
    committed: bool = False
    detail: str | None = None  # why it failed
    errors: tuple[FieldProblem, ...] = ()  # the file's problems, each with its line
    runner: str | None = None
    lease_until: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
