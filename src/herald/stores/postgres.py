"""The PostgreSQL store: Herald's source of truth when it runs at scale.

Any number of engines, on any number of machines, may share one database (run each with
``Engine(exclusive=False)``, which :func:`herald.bootstrap.running_engine` does for this store):

- claims pick due deliveries with ``FOR UPDATE SKIP LOCKED`` in batches, so concurrent
  dispatchers never claim the same delivery twice, never wait on each other and never skip one
  for good (a skipped row is one another claimer is taking);
- every engine registers itself and beats (:meth:`beat`); every claim records its engine and
  carries a lease (``lease_until``) that its engine renews. The lease keeper of any engine
  releases the deliveries of an engine that stopped beating (:meth:`recover_dead_engines`,
  within seconds) or whose lease ran out (:meth:`recover_expired_leases`, the backstop).
  ``every=True`` releases *all* leased deliveries: only for an engine that has the database to
  itself, never with several engines;
- guarded writes (:meth:`apply`) are one statement per batch: the compare-and-set on state
  and claim token, the attempts and the webhook events, all in one round trip.

Queries live in ``stores/sql/postgres.sql`` and ``common.sql``, migrations in
``stores/migrations/postgres/`` (applied at :meth:`open` under an advisory lock), the driver
behind :mod:`herald.stores.postgres_conn`, rows become objects in :mod:`herald.stores.rows`,
the catalogue and outbox are in :mod:`herald.stores.postgres_catalog`, the CSV import jobs in
:mod:`herald.stores.postgres_imports`.

Optional: a read replica (``replica_url``) serves the reads a service marks as allowed to lag
(:meth:`PostgresStore.lagging_reads`), with read-your-writes per API key; see
:mod:`herald.stores.postgres_replica`.

Optional: :meth:`PostgresStore.listen` wakes a dispatcher when another process adds posts
(``LISTEN``/``NOTIFY`` on a per-schema channel); without it, such posts are seen within
``engine.idle_recheck_s``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Unpack

from herald import domain, readsession
from herald.constants import NOTIFY_PREFIX
from herald.errors import NotFound, StoreError, StoreUnavailable
from herald.states import CLAIMABLE
from herald.stores.contract import (
    ABANDONED_ERROR,
    ClaimRequest,
    StatusChange,
    by_post,
    new_claim_token,
)
from herald.stores.postgres_catalog import PostgresCatalog
from herald.stores.postgres_conn import Connection, Database, Record, Unchanged, from_replica
from herald.stores.postgres_imports import PostgresImports
from herald.stores.postgres_listen import DueListener
from herald.stores.postgres_replica import Replica
from herald.stores.postgres_slots import AdvisorySlotLocks
from herald.stores.rows import POSTGRES as decode
from herald.stores.rows import content_of, post_json, usage_json
from herald.types import Adopted, EngineInfo, Recovered, T

__all__ = ["PostgresStore"]


class PostgresStore(PostgresCatalog, PostgresImports):
    """Implements :class:`herald.types.Store` on a PostgreSQL database.

    ``schema``: where Herald's tables live (created if missing); default: the URL's
    ``?schema=`` parameter, else the connection's current schema (``public``).
    ``pool_size``: connections per process; an engine uses a few at once (claims, the writer,
    leases, reads), the API one per request in flight. ``application_name``: how its sessions
    show in ``pg_stat_activity``. ``replica_url``: a streaming replica of the same database
    for the reads that may lag, used while it is at most ``replica_max_lag_s`` behind (its
    position read at most every ``replica_check_s``).
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = 10,
        command_timeout_s: float = 60.0,
        application_name: str = "herald",
        replica_url: str | None = None,
        replica_max_lag_s: float = 30.0,
        replica_check_s: float = 0.5,
    ) -> None:
        self._db = Database(
            url,
            schema=schema,
            pool_size=pool_size,
            command_timeout_s=command_timeout_s,
            application_name=application_name,
        )
        self._replica: Replica | None = None
        if replica_url is not None:
            replica = Database(
                replica_url,
                schema=self._db.schema,  # the primary's, once it is open
                pool_size=pool_size,
                command_timeout_s=command_timeout_s,
                application_name=application_name,
                open_timeout_s=0.0,  # one try: an absent replica only sends reads to the primary
                migrate=False,
            )
            self._replica = Replica(replica, max_lag_s=replica_max_lag_s, check_s=replica_check_s)
        self._listeners: list[DueListener] = []
        self._slots: AdvisorySlotLocks | None = None

    @property
    def schema(self) -> str | None:
        return self._db.schema

    @property
    def database(self) -> Database:
        """The primary's pool and named queries, for the package's own tooling (a workspace's
        move between regions: :mod:`herald.stores.postgres_move`)."""
        return self._db

    @property
    def notify_channel(self) -> str:
        """``LISTEN``/``NOTIFY`` channel of this schema's new due work; the payload is the
        earliest due instant, ISO 8601."""
        # PostgreSQL cuts LISTEN names at 63 bytes but refuses longer NOTIFY ones: cut here.
        # Two long schema names sharing 49 characters would only wake each other needlessly.
        return f"{NOTIFY_PREFIX}{self._db.schema}"[:63]

    async def open(self) -> None:
        await self._db.open()
        assert self._db.schema is not None  # opening found it
        slots = AdvisorySlotLocks(self._db.url, self._db.schema)
        try:
            await slots.open()
        except BaseException:
            await self._db.close()
            raise
        self._slots = slots
        if self._replica is not None:
            self._replica.db.schema = self._db.schema
            self._replica.system = await self._db.fetchval("system_identifier")
            self._db.replica = self._replica.db  # writes record positions from now on
            await self._replica.open()

    async def close(self) -> None:
        for listener in self._listeners:
            await listener.close()
        self._listeners.clear()
        slots, self._slots = self._slots, None
        if slots is not None:
            await slots.close()
        if self._replica is not None:
            await self._replica.close()
        await self._db.close()

    @property
    def replica(self) -> Replica | None:
        """The read replica, if one is configured."""
        return self._replica

    async def lagging_reads(self, read: Callable[[], Awaitable[T]]) -> T:
        """``read()`` from the replica when there is one, it keeps up, and it has replayed the
        last write of the API key the request acts for (read here from the primary, where
        every API node records it); otherwise, or if the replica fails it, from the primary."""
        replica = self._replica
        if replica is None:
            return await read()
        key = readsession.current()
        needed = None if key is None else await self._db.fetchval("read_position", key_id=key)
        if not await replica.serves(needed):
            return await read()
        try:
            with from_replica():
                return await read()
        except StoreUnavailable as exc:
            # Gone since its last check (a restart, a dropped connection): counted away, so
            # the next requests do not try it before its retry; this one reads the primary.
            replica.lost(exc)
        return await read()

    @asynccontextmanager
    async def slot_lock(self, channel_ids: Sequence[str]) -> AsyncIterator[None]:
        if self._slots is None:
            raise StoreError("the PostgreSQL store is not open")
        async with self._slots.hold(channel_ids):
            yield

    async def listen(self, notify: Callable[[datetime | None], None]) -> DueListener:
        """Call ``notify(at)`` whenever any process adds deliveries due at ``at`` or makes
        deliveries claimable again, until the listener or the store is closed.

        Pass :meth:`herald.engine.Engine.notify`. Uses one connection of its own, reconnected
        if it drops (then ``notify(None)``: something may have been missed). Returns once
        listening; raises :class:`~herald.errors.StoreError` if it cannot connect.
        """
        listener = DueListener(self._db, self.notify_channel, notify)
        await listener.start()
        self._listeners.append(listener)
        return listener

    async def _notify_due(self, conn: Connection, at: datetime | None) -> None:
        """Tell listeners work is due at ``at``; PostgreSQL sends it when the transaction
        commits, and not at all if it rolls back."""
        payload = "" if at is None else at.astimezone(UTC).isoformat()
        await conn.fetchval(self._db.q["notify_due"], channel=self.notify_channel, payload=payload)

    # -- channels, as the engine sees them --------------------------------------------------
    async def add_channels(
        self, channels: Sequence[domain.Channel], *, secrets: Mapping[str, bytes] | None = None
    ) -> None:
        now = domain.utcnow()
        sealed = secrets or {}
        async with self._db.transaction(
            "a channel with this id, or this account in its workspace, already exists",
            field="external_id",
        ) as conn:
            await conn.execute(
                self._db.q["insert_channels"],
                ids=[c.id for c in channels],
                platforms=[c.platform.value for c in channels],
                external_ids=[c.external_id for c in channels],
                names=[c.name for c in channels],
                timezones=[c.timezone for c in channels],
                credentials_refs=[c.credentials_ref for c in channels],
                statuses=[c.status.value for c in channels],
                created_at=[now] * len(channels),
                workspace_ids=[c.workspace_id for c in channels],
                regions=[c.region for c in channels],
                secrets=[sealed.get(c.id) for c in channels],
            )

    async def set_channel_status(
        self, channel_id: str, status: domain.ChannelStatus, **change: Unpack[StatusChange]
    ) -> None:
        now = domain.utcnow()
        async with self._db.transaction() as conn:
            found = await conn.fetchval(
                self._db.q["set_channel_status"],
                id=channel_id,
                status=status.value,
                credentials_ref=change.get("credentials_ref"),
                event=change.get("event"),
                now=now,
                now_iso=now.isoformat(),
            )
            if not found:
                raise NotFound("channel", channel_id)
            if status is domain.ChannelStatus.ACTIVE:
                await self._notify_due(conn, None)  # its deliveries are claimable again

    # -- posts and deliveries ---------------------------------------------------------------
    async def add_posts(self, posts: Sequence[domain.NewPost]) -> list[domain.Delivery]:
        now = domain.utcnow()
        targets = [(d, new.post.id) for new in posts for d in new.deliveries]
        contents = [post_json(new.post) for new in posts]
        async with self._db.transaction("a post or delivery with this id already exists") as conn:
            await conn.execute(
                self._db.q["insert_posts"],
                ids=[new.post.id for new in posts],
                contents=[content for content, _ in contents],
                overrides=[overrides for _, overrides in contents],
                created_at=[new.post.created_at for new in posts],
                workspace_ids=[new.post.workspace_id for new in posts],
            )
            inserted = await conn.fetch(
                self._db.q["insert_deliveries"],
                ids=[d.id for d, _ in targets],
                post_ids=[post_id for _, post_id in targets],
                channel_ids=[d.channel_id for d, _ in targets],
                due_at=[d.due_at for d, _ in targets],
                now=now,
            )
            if len(inserted) != len(targets):
                raise NotFound("channel", await self._missing_channel(conn, targets))
            if targets:
                await self._notify_due(conn, min(d.due_at for d, _ in targets))
        found = {d.id: d for d in map(decode.delivery, inserted)}
        return [found[d.id] for d, _ in targets]

    async def deliveries_of(self, post_ids: Sequence[str]) -> dict[str, list[domain.Delivery]]:
        found = await self._db.fetch("deliveries_of", post_ids=list(post_ids))
        return by_post(post_ids, map(decode.delivery, found))

    # -- engine -----------------------------------------------------------------------------
    async def claim_due(self, **asked: Unpack[ClaimRequest]) -> domain.ClaimBatch:
        token = new_claim_token()
        found = await self._db.fetch(
            "claim_due",
            now=asked["now"],
            limit=asked["limit"],
            token=token,
            lease_until=asked["lease_until"],
            expire_before=asked["expire_before"],
            engine_id=asked.get("engine_id"),
        )
        return _claimed(found, token)

    async def next_due_at(self) -> datetime | None:
        at: datetime | None = await self._db.fetchval("next_due_at")
        return at

    async def apply(self, transitions: Sequence[domain.Transition]) -> list[bool]:
        if not transitions:
            return []
        now = domain.utcnow()
        rounds = _rounds(transitions)
        done = [False] * len(transitions)
        # One round: a single statement, atomic by itself. Several (a delivery appears twice and
        # its changes must apply in order): one transaction around them.
        async with self._db.transaction(single=len(rounds) == 1) as conn:
            for positions in rounds:
                await self._apply_round(conn, transitions, positions, done, now)
            if not any(done):
                raise Unchanged  # and a key claim's mark is not kept: nothing was written
        return done

    async def _apply_round(
        self,
        conn: Connection,
        transitions: Sequence[domain.Transition],
        positions: list[int],
        done: list[bool],
        now: datetime,
    ) -> None:
        batch = [transitions[i] for i in positions]
        found = await conn.fetch(self._db.q["apply_transitions"], **transition_arrays(batch, now))
        woken: list[datetime] = []
        for row in found:
            index = positions[row["ord"] - 1]
            done[index] = True
            t = transitions[index]
            if t.claim_token is None and t.target in CLAIMABLE and t.next_attempt_at is not None:
                woken.append(t.next_attempt_at)  # a user's retry or reschedule: wake dispatchers
        if woken:
            await self._notify_due(conn, min(woken))

    async def extend_leases(self, claim_tokens: Sequence[str], lease_until: datetime) -> int:
        if not claim_tokens:
            return 0
        return await self._db.execute(
            "extend_leases", tokens=list(claim_tokens), lease_until=lease_until
        )

    async def adopt(
        self, claims: Sequence[tuple[str, str]], *, engine_id: str, lease_until: datetime
    ) -> Adopted:
        token = new_claim_token()
        if not claims:
            return Adopted(token)
        found = await self._db.fetch(
            "adopt_claims",
            ids=[delivery_id for delivery_id, _ in claims],
            tokens=[old for _, old in claims],
            token=token,
            engine_id=engine_id,
            lease_until=lease_until,
        )
        return Adopted(token, frozenset(row["id"] for row in found))

    async def recover_expired_leases(self, now: datetime, *, every: bool = False) -> int:
        found = await self._recover_claims([], now, None, every=every)
        return found.deliveries

    async def beat(self, engine: EngineInfo, now: datetime) -> bool:
        known: bool = await self._db.fetchval(
            "beat",
            id=engine.id,
            host=engine.host,
            pid=engine.pid,
            started_at=engine.started_at,
            now=now,
        )
        return known

    async def _remove_engines(
        self, engine_ids: Sequence[str], now: datetime, dead_before: datetime | None
    ) -> Recovered:
        return await self._recover_claims(engine_ids, now, dead_before, every=False)

    async def _recover_claims(
        self, engine_ids: Sequence[str], now: datetime, dead_before: datetime | None, *, every: bool
    ) -> Recovered:
        (row,) = await self._db.fetch(  # one row: the counts
            "recover_claims",
            engines=list(engine_ids),
            dead_before=dead_before,
            now=now,
            every=every,
            error=ABANDONED_ERROR,
        )
        return Recovered(tuple(row["engines"]), row["deliveries"])


def _claimed(found: Sequence[Record], token: str) -> domain.ClaimBatch:
    """The rows of ``claim_due``: jobs in due order, and the deliveries it expired."""
    jobs: list[domain.Job] = []
    expired: list[domain.Delivery] = []
    channels: dict[str, domain.Channel] = {}
    contents: dict[tuple[str, domain.Platform], domain.Content] = {}  # one post, many channels
    for row in found:
        delivery = decode.delivery(row)
        if not row["claimed"]:
            expired.append(delivery)
            continue
        channel = channels.get(delivery.channel_id)
        if channel is None:
            channel = channels[delivery.channel_id] = decode.channel(row, "channel.")
        key = (delivery.post_id, delivery.platform)
        content = contents.get(key)
        if content is None:
            content = contents[key] = content_of(row, delivery.platform, "post.")
        jobs.append(domain.Job(delivery, channel, content, token))
    jobs.sort(key=lambda j: (j.delivery.next_attempt_at or j.delivery.due_at, j.delivery.id))
    return domain.ClaimBatch(jobs=jobs, expired=expired)


def _rounds(transitions: Sequence[domain.Transition]) -> list[list[int]]:
    """Positions of ``transitions`` in consecutive groups that name each delivery once.

    One statement updates a row at most once, so a delivery named twice in a batch needs a
    second statement that sees the first one's effect: the same result as applying the
    transitions one after the other, in order.
    """
    rounds: list[list[int]] = [[]]
    seen: set[str] = set()
    for i, t in enumerate(transitions):
        if t.delivery_id in seen:
            rounds.append([])
            seen = set()
        seen.add(t.delivery_id)
        rounds[-1].append(i)
    return rounds


def transition_arrays(batch: Sequence[domain.Transition], now: datetime) -> dict[str, Any]:
    """The arguments of ``apply_transitions``: one array per domain.Transition field."""
    attempts = [t.attempt for t in batch]
    return {
        "ids": [t.delivery_id for t in batch],
        "targets": [t.target.value for t in batch],
        "tokens": [t.claim_token for t in batch],
        "due_at": [t.due_at for t in batch],
        "next_attempt_at": [t.next_attempt_at for t in batch],
        "lease_until": [t.lease_until for t in batch],
        "external_ids": [t.external_id for t in batch],
        "errors": [t.error for t in batch],
        "sent": [t.sent for t in batch],
        "retry_spent": [t.retry_spent for t in batch],
        "check_failed": [t.check_failed for t in batch],
        "reset_retries": [t.reset_retries for t in batch],
        "check_first": [t.check_first for t in batch],
        "check_since": [t.check_since for t in batch],
        "reconciled": [t.reconciled for t in batch],
        "published_at": [t.published_at for t in batch],
        "attempt_numbers": [a.number if a else None for a in attempts],
        "attempt_started": [a.started_at if a else None for a in attempts],
        "attempt_finished": [a.finished_at if a else None for a in attempts],
        "attempt_outcomes": [a.outcome if a else None for a in attempts],
        "attempt_errors": [a.error if a else None for a in attempts],
        "attempt_page_usage": [usage_json(a.page_usage) if a else None for a in attempts],
        "events": [t.event for t in batch],
        "unclaimed": [t.unclaimed for t in batch],
        "unheld": [t.unheld for t in batch],
        "now": now,
        "now_iso": now.astimezone(UTC).isoformat(),
    }
