"""The plug-in points of Herald, one Protocol each, and the values that cross them.

- :class:`Store`: the source of truth (SQLite embedded, PostgreSQL at scale), with four faces:
  :class:`EngineStore` (claims, guarded writes, leases), :class:`Catalog` (what the API
  manages), :class:`Outbox` (webhook events) and :class:`ImportJobs` (CSV imports run in the
  background).
- :class:`Directory`: the global directory of a deployment in several regions: each
  workspace's and API key's home region, and nothing of their content.
- :class:`JobQueue`: carries claimed deliveries from the dispatcher to the workers.
- :class:`RateLimiter`: decides when a request may go out without breaking a platform limit.
- :class:`ConcurrencyCaps`: bounds the requests in flight at once, per channel, app or platform.
- :class:`Connector`: speaks one platform's publishing API.
- :class:`CredentialResolver`: turns a channel's ``credentials_ref`` into its secrets.
- :class:`Clock`: where the engine reads the time (the system's, or a test's virtual time).

Three callables cross the seam between the API and the engine: :data:`Notify` (wake it for
new or moved deliveries), :data:`Readiness` (can it work) and :data:`Validator` (content rules).

Every implementation of a Protocol passes the same contract test suite, one class per suite in
``tests/suites/``, run by each tier on the implementations it reaches (``tests/unit`` in
process, ``tests/integration`` on servers and the platform simulator):

- Store: ``store_contract``, ``catalog_contract``, ``outbox_contract``, ``transition_table``,
  ``idempotency_contract``, ``import_contract``
  (memory, SQLite, PostgreSQL)
- Directory: ``directory_contract`` (MemoryDirectory; PostgresDirectory)
- JobQueue: ``queue_contract`` (MemoryQueue)
- RateLimiter: ``limiter_contract`` (MemoryLimiter; RedisLimiter, with several processes)
- ConcurrencyCaps: ``caps_contract`` (MemoryCaps; RedisCaps, with several processes)
- Connector: ``connector_contract`` (the four platforms' on the simulator; FakeConnector)
- CredentialResolver: ``resolver_contract`` (env and file refs, vault, composite, StaticCredentials)
- Clock: ``clock_contract`` (SystemClock; VirtualClock on its VirtualTimeLoop)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from herald.domain import (
    ApiKey,
    Attempt,
    Channel,
    ChannelStatus,
    ClaimBatch,
    Content,
    Delivery,
    ImportJob,
    Job,
    KeyHome,
    NewPost,
    Platform,
    Post,
    PostingSlot,
    SentRecord,
    Transition,
    Webhook,
    WebhookEvent,
    WebhookEventRecord,
    WebhookEventState,
    WebhookHealth,
    Workspace,
    WorkspaceHome,
)
from herald.states import DeliveryState

if TYPE_CHECKING:
    from herald.limits.rules import LimitClaim

__all__ = [
    "CapClaim",
    "CapsFull",
    "Catalog",
    "Clock",
    "ConcurrencyCaps",
    "Connector",
    "CredentialResolver",
    "Credentials",
    "Directory",
    "EarlierGrants",
    "EngineInfo",
    "EngineStore",
    "ImportJobs",
    "JobQueue",
    "KeyBusy",
    "KeyClaimed",
    "KeyDone",
    "KeyMismatch",
    "KeyStart",
    "KeyUnanswered",
    "Notify",
    "Outbox",
    "Permit",
    "PlatformUsage",
    "PublishRequest",
    "Published",
    "RateLimiter",
    "Readiness",
    "Recovered",
    "Regional",
    "Store",
    "StoredResponse",
    "Validator",
    "VersionObserver",
]

T = TypeVar("T")

#: What an earlier run was granted that still counts, read from the store when asked: each
#: grant's Unix time and claims, oldest first (see :mod:`herald.limits.replay`).
EarlierGrants = Callable[[], Awaitable[Sequence[tuple[float, Sequence["LimitClaim"]]]]]
#: A channel's secrets, e.g. ``{"access_token": "..."}``. Never logged.
Credentials = Mapping[str, str]
#: Deliveries were added or moved: claim them on time. Called with the earliest due time among
#: them (None: look for due work now); an engine running in the process passes its ``notify``.
Notify = Callable[[datetime | None], None]
#: Whether the engine running in this process can work now (started, and its store answers).
Readiness = Callable[[], bool]
#: One platform's content rules: raises :class:`~herald.errors.ContentInvalid` naming the field.
Validator = Callable[[Content], None]


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """A running engine in the store's registry; ``beat_at``: its last heartbeat, if read."""

    id: str
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a recovery released: engines removed from the registry, deliveries they held."""

    engines: tuple[str, ...] = ()
    deliveries: int = 0


@dataclass(frozen=True, slots=True)
class Adopted:
    """Claims handed over by :meth:`EngineStore.adopt`: their new token, which deliveries."""

    claim_token: str
    delivery_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """An API answer kept for an idempotency key, to be given again as it was. ``body`` is
    opaque to the store (the API keeps it encrypted); ``headers`` are the ones worth replaying
    (``Content-Type``, ``Location``), in order."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True, slots=True)
class KeyClaimed:
    """The key is this request's: do the work, then :meth:`Catalog.finish_idempotent` or
    :meth:`Catalog.release_idempotent` with ``token``."""

    token: str


@dataclass(frozen=True, slots=True)
class KeyDone:
    """The same request was answered already: give ``response`` again, do nothing."""

    response: StoredResponse


@dataclass(frozen=True, slots=True)
class KeyBusy:
    """The same request is being answered (its claim holds until ``locked_until``)."""

    locked_until: datetime


@dataclass(frozen=True, slots=True)
class KeyUnanswered:
    """The same request did its work (its write committed) and is over, but no answer was kept
    (it failed afterwards, or its process died): nothing to give again, nothing to redo."""


@dataclass(frozen=True, slots=True)
class KeyMismatch:
    """The key was used for another request (another fingerprint) and is still alive."""


#: What :meth:`Catalog.begin_idempotent` says about a key.
KeyStart = KeyClaimed | KeyDone | KeyBusy | KeyUnanswered | KeyMismatch


@runtime_checkable
class EngineStore(Protocol):
    """What the engine needs from the store: claims, guarded writes, leases."""

    async def open(self) -> None:
        """Connect and bring the schema up to date (migrations)."""

    async def close(self) -> None: ...

    async def get_channel(self, channel_id: str) -> Channel:
        """Raise :class:`~herald.errors.NotFound` if there is no such channel."""

    async def set_channel_status(
        self,
        channel_id: str,
        status: ChannelStatus,
        *,
        credentials_ref: str | None = None,
        event: str | None = None,
    ) -> None:
        """Change a channel's status; ``event`` (e.g. ``channel.needs_reauth``) is recorded for
        the workspace's webhooks in the same transaction."""

    async def claim_due(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        expire_before: datetime,
        engine_id: str | None = None,
    ) -> ClaimBatch:
        """Atomically claim up to ``limit`` due deliveries of active channels for the engine
        ``engine_id`` (recorded with the claims: :meth:`recover_dead_engines`).

        Deliveries due before ``expire_before`` that owe no check are marked expired in the
        same transaction and returned apart, never claimed.
        """

    async def next_due_at(self) -> datetime | None:
        """The earliest ``next_attempt_at`` among claimable deliveries of active channels."""

    async def apply(self, transitions: Sequence[Transition]) -> list[bool]:
        """Write guarded state changes in one transaction; say which ones took effect.

        A transition with an ``event`` that takes effect also records that event for every
        webhook of the delivery's workspace subscribed to it, in the same transaction."""

    async def extend_leases(self, claim_tokens: Sequence[str], lease_until: datetime) -> int:
        """Keep the leases of deliveries an engine still holds; return how many."""

    async def adopt(
        self,
        claims: Sequence[tuple[str, str]],
        *,
        engine_id: str,
        lease_until: datetime,
    ) -> Adopted:
        """Hand claims over to the engine ``engine_id`` (a worker that took them off a broker).

        Each of ``claims`` is ``(delivery id, claim token)``; the ones still ``claimed`` under
        that token (nothing sent since, no one else took them) get a new token, the new engine
        and ``lease_until``, in one transaction. The old token writes nothing any more, so a
        second copy of the same message, taken by another worker, is refused here: only one
        worker ever holds a delivery."""

    async def recover_expired_leases(self, now: datetime, *, every: bool = False) -> int:
        """Release deliveries whose lease ran out (``every``: all leased ones, for an engine
        that has the store to itself at start-up). Unsent ones become claimable again; ones
        that may have been sent become ``unconfirmed`` and are checked before any resend.
        The send of one still ``publishing`` is recorded in the same transaction, as an
        ``abandoned`` attempt (its number, started at its ``check_since``): the platform may
        have counted it, and :meth:`sent_since` must still say so once a look-up has settled
        the delivery."""

    async def beat(self, engine: EngineInfo, now: datetime) -> bool:
        """Record that ``engine`` is alive at ``now``, registering it if it is not: at its
        first beat, or after another engine took it for dead (then False)."""

    async def recover_dead_engines(self, now: datetime, *, dead_before: datetime) -> Recovered:
        """Remove the engines whose last beat is older than ``dead_before`` and release what
        they held, as :meth:`recover_expired_leases` releases a lapsed lease."""

    async def deregister_engine(self, engine_id: str, now: datetime) -> Recovered:
        """A graceful stop: remove the engine, releasing anything it still holds."""

    async def list_engines(self) -> list[EngineInfo]:
        """The registered engines, oldest first."""

    async def get_channel_secret(self, channel_id: str) -> bytes | None:
        """The channel's encrypted credentials, when the store keeps them (``vault:`` refs)."""

    async def sent_since(self, since: datetime) -> list[SentRecord]:
        """What was sent from ``since`` on, oldest first: every recorded attempt (publish,
        look-up with its further listing pages, send abandoned by a stopped engine) that
        started then or later, and every send whose outcome is not recorded (a delivery still
        ``publishing``, or owing a look-up, since ``since`` or later).

        An engine rebuilds its rate limiter from it at start-up: the platforms remember."""

    async def record_platform_event(
        self, platform: Platform, event: str, payload: Mapping[str, object], at: datetime
    ) -> int:
        """Record ``event`` (its ``payload``, a JSON object with the ``platform`` and the
        ``version`` it is about)
        for every webhook subscribed to it whose workspace has a channel on ``platform``, but
        not again the same UTC day for a webhook that already got it about that version: every
        engine process started that day (cron, deploys, a fleet's workers) warns on its own.
        Return how many were recorded."""

    async def list_attempts(self, delivery_id: str) -> list[Attempt]:
        """A delivery's attempts, in order (the engine reads them when a look-up finds
        nothing: the last send's end bounds when its post was made)."""


@runtime_checkable
class Catalog(Protocol):
    """Workspaces, keys, channels, posts, posting slots and webhooks: what the API manages.

    The store does not scope reads by workspace; the API checks every object it returns
    against the caller's workspace and answers 404 otherwise.
    """

    async def add_workspace(self, workspace: Workspace) -> None: ...

    async def get_workspace(self, workspace_id: str) -> Workspace: ...

    async def list_workspaces(self) -> list[Workspace]:
        """Every workspace, ordered by id, the default one included: for the operations that
        span tenants (re-encrypting secrets under a new key), never for an API caller."""

    async def add_api_key(self, key: ApiKey, secret_hash: str) -> None: ...

    async def api_key_by_prefix(self, prefix: str) -> tuple[ApiKey, str] | None:
        """The key with this prefix and its secret's hash, revoked or not."""

    async def list_api_keys(self, workspace_id: str) -> list[ApiKey]: ...

    async def revoke_api_key(self, key_id: str, at: datetime) -> None: ...

    async def erase_workspace(self, workspace_id: str) -> dict[str, int]:
        """Delete the workspace and everything of it (keys, channels and their secrets and
        slots, posts, deliveries, attempts, webhooks and their events, idempotency keys and
        the answers kept with them) in one transaction;
        how many rows of each kind went. :class:`NotFound` if there is no such workspace."""
        ...

    async def add_channels(
        self, channels: Sequence[Channel], *, secrets: Mapping[str, bytes] | None = None
    ) -> None:
        """Store new channels in one transaction, each with its encrypted credentials from
        ``secrets`` (by channel id), if any: a channel is never seen without them.
        :class:`~herald.errors.InvalidInput` if an id, or an account in its workspace, is
        taken."""

    async def list_channels(self, workspace_id: str | None = None) -> list[Channel]:
        """Channels, ordered by id; deleted ones excluded."""

    async def update_channel(self, channel: Channel) -> None:
        """Store the channel's name, time zone and credentials reference."""

    async def delete_channel(self, channel_id: str, at: datetime) -> int:
        """Mark the channel deleted and cancel its pending deliveries; return how many."""

    async def set_channel_secret(self, channel_id: str, ciphertext: bytes) -> None: ...

    async def set_schedule(self, channel_id: str, slots: Sequence[PostingSlot]) -> None: ...

    async def get_schedule(self, channel_id: str) -> list[PostingSlot]: ...

    async def busy_times(self, channel_id: str, start: datetime, end: datetime) -> set[datetime]:
        """Due times in ``[start, end)`` already taken by live deliveries of the channel."""

    def slot_lock(self, channel_ids: Sequence[str]) -> AbstractAsyncContextManager[None]:
        """Held from a next-free-slot search to the write that uses its slots: every other
        holder of any of these channels (in any process on this store) waits, so two requests
        never get one slot. Take it around the search and the write only."""
        ...

    async def lagging_reads(self, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``'s answer, its reads allowed to lag behind the latest writes (a listing,
        an export, a calendar; never what a decision or a write is made from): a store with a
        read replica may serve them from it, except what the API key the request acts for
        (:mod:`herald.readsession`) wrote and the replica has not replayed yet, and reads
        them again from the primary if the replica fails them. ``read`` must only read (it
        may run twice). Other stores read as always."""
        ...

    async def add_posts(self, posts: Sequence[NewPost]) -> list[Delivery]:
        """Store posts and their deliveries in one transaction; return the deliveries."""

    async def get_post(self, post_id: str) -> Post: ...

    async def list_posts(
        self,
        workspace_id: str,
        *,
        state: DeliveryState | None = None,
        channel_id: str | None = None,
        due_from: datetime | None = None,
        due_to: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 50,
        with_held: bool = True,
    ) -> list[Post]:
        """Posts ordered by (created_at, id), after the cursor ``after``; the filters keep posts
        with at least one delivery in ``state``, on ``channel_id``, due in the range. Without
        ``with_held``, posts with a delivery a CSV import holds (:attr:`Delivery.held`: its
        import has not made it due yet) are left out."""

    async def deliveries_of(self, post_ids: Sequence[str]) -> dict[str, list[Delivery]]: ...

    async def get_delivery(self, delivery_id: str) -> Delivery: ...

    async def list_deliveries(
        self, *, state: DeliveryState | None = None, limit: int = 1000, after_id: str = ""
    ) -> list[Delivery]:
        """Deliveries ordered by id, for paging: pass the last id seen as ``after_id``."""

    async def count_by_state(self) -> dict[DeliveryState, int]: ...

    async def count_webhook_backlog(self) -> int:
        """Webhook events not yet delivered nor given up (pending, or being sent)."""

    async def count_channels_needing_reauth(self) -> dict[Platform, int]:
        """Live channels parked until their user gives new credentials, per platform."""

    async def add_webhook(self, webhook: Webhook, secret_ciphertext: bytes) -> None: ...

    async def list_webhooks(self, workspace_id: str) -> list[Webhook]: ...

    async def get_webhook_secret(self, webhook_id: str) -> bytes: ...

    async def set_webhook_secret(self, webhook_id: str, ciphertext: bytes) -> None:
        """Replace the encrypted signing secret of a webhook (the same secret re-encrypted under
        a new key); raise :class:`~herald.errors.NotFound` if there is no such live webhook."""

    async def delete_webhook(self, webhook_id: str) -> None: ...

    async def begin_idempotent(
        self,
        workspace_id: str,
        key: str,
        fingerprint: str,
        *,
        now: datetime,
        locked_until: datetime,
        expires_at: datetime,
    ) -> KeyStart:
        """Claim the idempotency ``key`` of the workspace for a request whose fingerprint is
        ``fingerprint``, atomically, whoever else asks at once (every process on the store).

        A key's row is ``in_progress`` (claimed, nothing of its work committed), ``committed``
        (its work committed: every write made while the claim is held,
        :mod:`herald.keyclaim`, marks it so in its own transaction) or ``done`` (its answer
        kept). The key is claimed (:class:`KeyClaimed`, its row ``in_progress`` and locked
        until ``locked_until``, the whole row kept until ``expires_at``) when it has no row,
        when its row expired (``expires_at`` <= ``now``), or when its row was left
        ``in_progress`` past its lock by a request with the same fingerprint (its process died,
        or it is slow: taking the key over changes its token, so that request can no longer
        commit anything). A ``committed`` row is never taken over. Otherwise: a row with
        another fingerprint is :class:`KeyMismatch`; a ``done`` one is :class:`KeyDone`; a
        ``committed`` one past its lock is :class:`KeyUnanswered`; any other is
        :class:`KeyBusy`. Of requests asking at once, exactly one claims the key."""

    async def finish_idempotent(
        self, workspace_id: str, key: str, token: str, response: StoredResponse
    ) -> bool:
        """Keep ``response`` for the key claimed under ``token`` (``in_progress`` or
        ``committed``: it becomes ``done``); False (nothing written) when the claim was lost
        (another request took the key over) or its row is gone."""

    async def release_idempotent(self, workspace_id: str, key: str, token: str) -> bool:
        """The request under ``token`` ended without an answer to keep. A key still
        ``in_progress`` (nothing committed) is given up: free again, True. A ``committed`` one
        stays so, its lock ended (a retry is told at once that the work was done, never does
        it again): False, as when the claim was lost already."""

    async def purge_idempotency(self, before: datetime, *, limit: int) -> int:
        """Delete up to ``limit`` key rows that expired by ``before``; return how many."""

    async def enable_webhook(self, webhook_id: str) -> None:
        """Switch a webhook (back) on with a clean failure record, no hold: its kept events go
        out again. :class:`~herald.errors.NotFound` if there is no such live webhook."""

    async def list_webhook_events(
        self,
        webhook_id: str,
        *,
        state: WebhookEventState | None = None,
        after_id: str = "",
        limit: int = 50,
    ) -> list[WebhookEventRecord]:
        """The webhook's events ordered by id (ids start with the millisecond they were
        recorded in), those after ``after_id``, in ``state`` if given."""

    async def get_webhook_event(self, event_id: str) -> WebhookEventRecord:
        """Raise :class:`~herald.errors.NotFound` if there is no such event."""

    async def replay_webhook_event(self, event_id: str, *, at: datetime) -> bool:
        """Send a finished (``sent`` or ``failed``) event again: pending, due at ``at``, with
        every attempt to use again. False (nothing changed) for an event still on its way;
        :class:`~herald.errors.NotFound` if there is no such event."""


@runtime_checkable
class Outbox(Protocol):
    """Webhook events waiting to be sent, written together with the changes they report, and
    what the sender keeps about each webhook's health."""

    async def claim_webhook_events(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        per_webhook: int | None = None,
        per_workspace: int | None = None,
        probes: int | None = None,
    ) -> list[WebhookEvent]:
        """Lease up to ``limit`` due pending events until ``lease_until`` (one more attempt
        each, started at ``now``), after giving back those whose lease ran out.

        Shared fairly: a webhook has at most ``per_webhook`` events in flight (``sending``, by
        any sender), and one only while it is failing (a probe); failing webhooks all
        together at most ``probes``, the most overdue first; a workspace at most
        ``per_workspace`` (None: no cap). The batch takes the workspaces in turn (each one's
        most overdue event, then each one's next...). Events of a disabled webhook, or of one
        held until after ``now``, stay pending; those of a deleted webhook are handed out (to
        be settled)."""

    async def settle_webhook_event(
        self,
        event_id: str,
        *,
        sent: bool,
        next_attempt_at: datetime | None,
        error: str | None,
        at: datetime,
    ) -> WebhookHealth | None:
        """Sent, or failed: retried at ``next_attempt_at``, or given up (kept as ``failed``)
        when it is None. The webhook's failure record is updated in the same transaction (a
        sent event clears it and its hold); returns it, or None if the event was not
        ``sending`` any more (its lease ran out and another sender has it)."""

    async def next_webhook_event_at(self) -> datetime | None:
        """When the next pending event may be claimed, its webhook's hold counted; events of
        disabled webhooks are left out. A time already past can still be held back by the
        caps of :meth:`claim_webhook_events`."""

    async def hold_webhook(self, webhook_id: str, until: datetime) -> None:
        """No event of the webhook is claimed before ``until``, while it is failing (a sent
        event since has cleared its failure record: nothing is held). A later hold wins."""

    async def disable_webhook(self, webhook_id: str, *, reason: str, at: datetime) -> bool:
        """Disable a webhook that is still failing, and record ``webhook.disabled`` for the
        workspace's other webhooks subscribed to it, in one transaction. False (nothing
        changed) if it is disabled already, deleted, or no longer failing."""


@runtime_checkable
class ImportJobs(Protocol):
    """CSV imports run in the background: the jobs, and the posts each one stores.

    A job is worked on by one *runner* (an API process) at a time, which holds it until its
    ``lease_until``. Every write for a job names the runner, and raises
    :class:`~herald.errors.Conflict` when the runner no longer holds it (another one took it
    over), so a runner that stalled past its lease can never write beside the one that took
    over. A job's posts are stored *held* (:attr:`Delivery.held`): their deliveries are
    ``scheduled`` with no ``next_attempt_at``, which nothing claims and no user's transition
    changes (``Transition.unheld``), until :meth:`release_import` makes them due; until then
    :meth:`discard_import` can remove them without a trace.
    """

    async def add_import(self, job: ImportJob, *, max_running: int) -> bool:
        """Store a new job, unless its workspace already has ``max_running`` unfinished
        (queued, validating, writing) jobs: then store nothing and answer False. The check and
        the insert are atomic, whatever other process adds a job at the same time."""

    async def running_imports(self, workspace_id: str) -> int:
        """How many unfinished (queued, validating, writing) jobs the workspace has: a cheap
        look before an upload is read (:meth:`add_import` decides)."""

    async def get_import(self, import_id: str) -> ImportJob:
        """Raise :class:`~herald.errors.NotFound` if there is no such job."""

    async def list_imports(
        self, workspace_id: str, *, after: tuple[datetime, str] | None = None, limit: int = 50
    ) -> list[ImportJob]:
        """The workspace's jobs ordered by (created_at, id), after the cursor ``after``,
        without their problems (``errors`` empty: a listing stays small whatever the files;
        :meth:`get_import` reads them)."""

    async def purge_imports(self, before: datetime, *, limit: int) -> int:
        """Remove jobs finished (succeeded or failed) before ``before``: at most ``limit`` of
        their lines (the posts stay), then at most ``limit`` of those jobs left without
        lines; return how many rows went (0: nothing left to remove). One short transaction
        a call, so a purge never holds many locks."""

    async def save_import(self, job: ImportJob) -> None:
        """Write the job's state, counts, problems and times, if ``job.runner`` still holds
        the unfinished job (else :class:`~herald.errors.Conflict`). Never its lease, which
        :meth:`extend_import_leases` keeps meanwhile."""

    async def extend_import_leases(
        self, runner: str, import_ids: Sequence[str], lease_until: datetime
    ) -> int:
        """Set the lease of those of ``import_ids`` that ``runner`` holds, unfinished, to
        ``lease_until`` (a past instant gives them up: the next take-over finds them);
        return how many."""

    async def take_over_imports(
        self, runner: str, *, now: datetime, lease_until: datetime
    ) -> list[ImportJob]:
        """Hand every unfinished job whose lease ran out before ``now`` to ``runner`` (until
        ``lease_until``); return them as taken."""

    async def add_import_posts(self, job: ImportJob, posts: Sequence[tuple[int, NewPost]]) -> None:
        """In one transaction: store ``posts`` (each with its file line, unique in the job) held,
        and :meth:`save_import` ``job`` (its progress). :class:`~herald.errors.Conflict` and
        nothing stored if ``job.runner`` no longer holds the job."""

    async def release_import(
        self, import_id: str, runner: str, *, after_line: int, limit: int
    ) -> int | None:
        """Make due the held deliveries of the job's posts on its next ``limit`` lines after
        ``after_line`` (their ``next_attempt_at`` becomes their due time); return the last
        of those lines, or None when there is none left."""

    async def discard_import(
        self, import_id: str, runner: str, *, after_line: int, limit: int
    ) -> int | None:
        """Remove the job's posts on its next ``limit`` lines after ``after_line``, with every
        delivery of theirs and those lines; return the last of those lines, or None when
        there is none left. For a job that was not committed: none of its deliveries was ever
        claimable, nor changed by a user (``Transition.unheld``), so nothing was sent for any
        (the cancel of a channel's deletion is the one change they may have had)."""

    async def list_import_posts(
        self, import_id: str, *, after_line: int = 0, limit: int = 50
    ) -> list[tuple[int, Post]]:
        """The job's posts with their lines, in line order, after ``after_line``."""


@runtime_checkable
class Store(EngineStore, Catalog, Outbox, ImportJobs, Protocol):
    """The source of truth; every store implements the four faces and passes their contract
    suites (listed above)."""


@runtime_checkable
class Directory(Protocol):
    """Where each workspace and API key lives, when a deployment spans regions (each region's
    database holds its workspaces whole; this holds their ids, their keys' prefixes and hashes
    and their regions, no content). Every API node reads it to find a caller's region; only
    the admin commands and the key routes write it."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add_workspace(self, home: WorkspaceHome) -> None:
        """Record a new workspace's home; :class:`~herald.errors.Conflict` if its id is known."""

    async def workspace(self, workspace_id: str) -> WorkspaceHome | None: ...

    async def workspaces(self, region: str | None = None) -> list[WorkspaceHome]:
        """Every workspace (of ``region``), oldest first."""

    async def remove_workspace(self, workspace_id: str) -> None:
        """Forget the workspace and its keys (its erasure is done); unknown: nothing."""

    async def add_key(self, key: ApiKey, digest: str) -> None:
        """Record a key of a known workspace (:class:`~herald.errors.NotFound` otherwise)."""

    async def key(self, prefix: str) -> KeyHome | None:
        """The key of ``prefix``, with its workspace's region (None: unknown)."""

    async def key_by_id(self, key_id: str) -> KeyHome | None: ...

    async def revoke_key(self, key_id: str) -> None:
        """Mark the key revoked (the region's database is told first); unknown: nothing."""

    async def begin_move(self, workspace_id: str, to: str) -> WorkspaceHome:
        """Mark the workspace as moving to region ``to``; from then its requests are refused.
        :class:`~herald.errors.Conflict` if it is already moving elsewhere or lives in ``to``."""

    async def end_move(self, workspace_id: str, *, moved: bool) -> WorkspaceHome:
        """``moved``: its home is now the region it was moving to; else it stays where it was.
        Either way it is no longer moving."""

    def move_lock(self, workspace_id: str) -> AbstractAsyncContextManager[None]:
        """Held for a whole run of a move (or its abort) of ``workspace_id``: a second run
        at once is refused (:class:`~herald.errors.Conflict`), as it would discard the copy
        the first is making live. Released when the block ends, or its holder dies."""


@dataclass(frozen=True, slots=True)
class Regional:
    """What an API node of a deployment in several regions serves with besides its own
    region's store: the directory, and the other regions' stores it serves from (open)."""

    directory: Directory
    stores: Mapping[str, Store] = field(default_factory=dict)


@runtime_checkable
class JobQueue(Protocol):
    """Moves claimed deliveries to workers. Durability comes from the store's leases."""

    async def put(self, jobs: Sequence[Job]) -> None: ...

    async def get(self) -> Job:
        """Wait for the next job; raise :class:`~herald.errors.QueueError` once closed."""

    async def ack(self, job: Job) -> None:
        """The job is finished (its outcome is in the store)."""

    def depth(self) -> int:
        """Jobs waiting to be taken, as last known (answers without a round trip)."""

    async def refresh_depth(self) -> None:
        """Ask a queue shared with other processes for the figure :meth:`depth` returns."""

    def unread(self) -> Collection[Job]:
        """The jobs this queue put that no consumer has read yet, as last known (after
        :meth:`refresh_depth`): a dispatcher keeps their claims alive meanwhile. One the
        broker lost is left out as soon as the queue can tell."""

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
        is Unix time in seconds. Raises :class:`~herald.errors.LimiterUnavailable` rather than
        admit on a state it cannot trust (never the case in memory).
        """

    async def refund(
        self, claims: Sequence[LimitClaim], granted_at: float, *, unsent: bool = False
    ) -> None:
        """Give back the units of refundable claims granted at ``granted_at`` (the request
        definitely failed and the platform counts only successes); with ``unsent``, of every
        claim (the request never reached the platform, which counted nothing)."""

    def quota_use(self, now: float) -> dict[tuple[str, str], float]:
        """Per (platform, rule name), the units used on that rule's busiest key at ``now``
        (its window's, its day's; a pacing's burst spent ahead of now), as far as this process
        knows without a round trip: ``herald_quota_used``. Rules without use may be absent."""

    async def replay(self, claims: Sequence[LimitClaim], granted_at: float) -> None:
        """Record claims granted at ``granted_at`` by an earlier run, without checking them.

        What :meth:`rebuild` does with each earlier grant, in time order, before any
        :meth:`reserve` (see :mod:`herald.limits.replay`).
        """

    async def rebuild(self, earlier: EarlierGrants) -> int | None:
        """Make the limiter count what the platforms still count, so that it may admit.

        An engine calls it as it starts, and again whenever :meth:`reserve` raised
        :class:`~herald.errors.LimiterUnavailable` (a shared limiter lost its state). A limiter
        that needs it replays ``earlier()`` and returns how many grants it replayed; one that
        does not (it kept its state, or another engine rebuilt the shared one) returns None
        without calling ``earlier``. Raises :class:`~herald.errors.LimiterUnavailable` while it
        cannot be done (the server is away).
        """

    async def block(self, key: str, until: float) -> None:
        """Refuse every claim on ``key`` until Unix time ``until`` (a platform told us so)."""


@dataclass(frozen=True, slots=True)
class CapClaim:
    """One slot of the cap on ``key`` (a channel's, an app's, a platform's), which holds at
    most ``limit`` permits at once (see :mod:`herald.caps.claims`)."""

    key: str
    limit: int


@dataclass(frozen=True, slots=True)
class Permit:
    """Slots held on ``keys`` under one lease, until released or the lease runs out."""

    id: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CapsFull:
    """No slot was taken. ``keys``: the caps that are full (empty: the caps are not granting
    yet, after a restart of their server). ``wait_s``: when a slot is sure to free at the
    latest, its lease running out (a holder that died); a release may come sooner."""

    wait_s: float
    keys: tuple[str, ...] = ()


@runtime_checkable
class ConcurrencyCaps(Protocol):
    """Bounds how many requests are in flight at once on each cap key, across every process
    sharing the caps. Slots are leases of ``lease_s`` seconds: a holder renews them while its
    request is in flight, and a holder that dies loses them within one lease."""

    lease_s: float

    async def acquire(
        self, claims: Sequence[CapClaim], holder: str, now: float
    ) -> Permit | CapsFull:
        """Take one slot on every claim's key at once, or none: a permit for ``holder`` (an
        engine's id) leased until ``now + lease_s``, or :class:`CapsFull`. Slots whose lease
        ended by ``now`` are free. ``now`` is Unix time in seconds. Raises
        :class:`~herald.errors.CapsUnavailable` rather than grant on a state it cannot read."""

    async def release(self, permits: Sequence[Permit]) -> None:
        """Free the permits' slots (a permit already gone is ignored)."""

    async def renew(self, permits: Sequence[Permit], now: float) -> None:
        """Lease the permits' slots again, until ``now + lease_s``: their requests are still in
        flight. A permit the caps lost (their server restarted) is taken back."""


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
    # Look-ups: called before each listing page after the first with what that page consumes,
    # returns once the rate limiter grants it (the first page was reserved with the job).
    meter: Callable[[Mapping[str, int]], Awaitable[None]] | None = None


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

    def forget(self, channel: Channel) -> None:
        """Drop whatever is cached for ``channel``: the platform refused its token, and the
        next :meth:`resolve` must read the secrets again (the user may have re-authorised)."""


@runtime_checkable
class VersionObserver(Protocol):
    """Told by a connector which API version answered it (:mod:`herald.engine.versions`)."""

    def served(self, platform: Platform, asked: str, served: str | None) -> None:
        """A platform answered a call naming version ``asked`` from ``served``; None: it
        refused ``asked`` as retired. Called from the connector, so it must not block."""


@runtime_checkable
class Clock(Protocol):
    """Where the engine reads the time.

    Only reading: waiting (sleeps, timeouts, timers) is the running event loop's business, and
    a clock must agree with that loop. :class:`herald.timing.SystemClock` agrees with any
    real-time loop; :class:`herald.testing.VirtualTimeLoop` brings a clock of its own that
    reads the loop's virtual time.
    """

    def now(self) -> datetime:
        """Wall time, as an aware UTC datetime."""

    def time(self) -> float:
        """Wall time in Unix seconds (what the rate limiter counts in)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps back: for measuring how long something took."""
