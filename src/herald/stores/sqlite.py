"""The SQLite store: Herald's embedded, zero-setup source of truth.

WAL mode, one writer connection and one reader connection, each in its own thread. Writes
come in batches (a claim of hundreds of deliveries, a group of outcomes) so one fsync covers
many deliveries. Queries live in ``stores/sql/sqlite.sql`` and ``common.sql``, rows become
objects in :mod:`herald.stores.rows`; the catalogue and the webhook outbox are in
:mod:`herald.stores.sqlite_catalog`, the CSV import jobs in :mod:`herald.stores.sqlite_imports`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Unpack

from herald import domain
from herald.errors import ConfigError, InvalidInput, NotFound
from herald.stores.contract import (
    ABANDONED_ERROR,
    ClaimRequest,
    StatusChange,
    by_post,
    new_claim_token,
)
from herald.stores.queries import for_each_target, load_queries
from herald.stores.rows import (
    CHANNEL_COLUMNS,
    DELIVERY_COLUMNS,
    POST_COLUMNS,
    micros,
    post_json,
    usage_json,
)
from herald.stores.rows import SQLITE as decode
from herald.stores.slot_locks import FileLock
from herald.stores.sqlite_catalog import SQLiteCatalog
from herald.stores.sqlite_conn import ThreadedConnection, apply_migrations
from herald.stores.sqlite_imports import SQLiteImports, missing_channel
from herald.stores.sqlite_lock import EngineLock
from herald.types import Adopted, EngineInfo, Recovered, T

__all__ = ["SQLiteStore", "sqlite_path"]


def sqlite_path(database_url: str) -> str:
    """The file path in ``sqlite:///relative.db`` or ``sqlite:////absolute.db``."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or len(database_url) == len(prefix):
        raise ConfigError(f"not a SQLite URL with a file path: {database_url!r}")
    path = database_url[len(prefix) :]
    if path == ":memory:":
        raise ConfigError("the SQLite store needs a file (two connections share it)")
    return path


class SQLiteStore(SQLiteCatalog, SQLiteImports):
    """Implements :class:`herald.types.Store` on a SQLite file."""

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", engine_lock: bool = False
    ) -> None:
        self.path = str(path)
        # An engine's store takes the file's engine lock before anything else, migrations
        # included, and holds it until closed (herald.stores.sqlite_lock).
        self._lock = EngineLock(self.path) if engine_lock else None
        self._q = load_queries("sqlite")
        # Every write goes through the writer's transactions, which mark a request's key claim
        # (herald.keyclaim); the reader cannot write.
        self._writer = ThreadedConnection(
            self.path,
            synchronous=synchronous,
            name="herald-db-w",
            mark_sql=self._q["mark_idempotent"],
        )
        self._reader = ThreadedConnection(self.path, synchronous=synchronous, name="herald-db-r")
        self._apply_sql = for_each_target(self._q["apply_transition"])
        # Slot searches of every process on this file take turns (herald.stores.slot_locks):
        # first within the process, then across processes through the file lock.
        self._slot_turns = asyncio.Lock()
        self._slot_file = FileLock(f"{self.path}.slots.lock")

    @property
    def holds_engine_lock(self) -> bool:
        return self._lock is not None and self._lock.held

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if self._lock is not None:
            self._lock.acquire()
        try:
            await self._writer.run(apply_migrations)
            await self._reader.open()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        try:
            await self._writer.close()
            await self._reader.close()
        finally:
            if self._lock is not None:
                self._lock.release()

    async def lagging_reads(self, read: Callable[[], Awaitable[T]]) -> T:
        return await read()  # an embedded database has no replica: nothing lags

    @asynccontextmanager
    async def slot_lock(self, channel_ids: Sequence[str]) -> AsyncIterator[None]:
        # One lock for the file: SQLite writes one transaction at a time anyway.
        async with self._slot_turns, self._slot_file.hold():
            yield

    # -- channels, as the engine sees them --------------------------------------------------
    async def add_channels(
        self, channels: Sequence[domain.Channel], *, secrets: Mapping[str, bytes] | None = None
    ) -> None:
        now = micros(domain.utcnow())
        sealed = secrets or {}
        values = [
            (
                c.id,
                c.platform.value,
                c.external_id,
                c.name,
                c.timezone,
                c.credentials_ref,
                c.status.value,
                now,
                c.workspace_id,
                c.region,
                sealed.get(c.id),
            )
            for c in channels
        ]

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.executemany(self._q["insert_channel"], values)
            except sqlite3.IntegrityError as exc:
                raise InvalidInput(
                    "a channel with this id, or this account in its workspace, already exists",
                    field="external_id",
                ) from exc

        await self._writer.transaction(insert)

    async def set_channel_status(
        self, channel_id: str, status: domain.ChannelStatus, **change: Unpack[StatusChange]
    ) -> None:
        now, event = domain.utcnow(), change.get("event")
        values = (status.value, change.get("credentials_ref"), channel_id)

        def update(conn: sqlite3.Connection) -> None:
            if conn.execute(self._q["set_channel_status"], values).rowcount == 0:
                raise NotFound("channel", channel_id)
            if event is not None:
                params = {
                    "id": channel_id,
                    "event": event,
                    "now": micros(now),
                    "now_iso": now.isoformat(),
                }
                conn.execute(self._q["channel_event"], params)

        await self._writer.transaction(update)

    # -- posts and deliveries ---------------------------------------------------------------
    async def add_posts(self, posts: Sequence[domain.NewPost]) -> list[domain.Delivery]:
        now = micros(domain.utcnow())
        post_rows = [
            (p.id, *post_json(p), micros(p.created_at), p.workspace_id)
            for p in (new.post for new in posts)
        ]
        delivery_rows = [
            (d.id, new.post.id, micros(d.due_at), micros(d.due_at), now, d.channel_id)
            for new in posts
            for d in new.deliveries
        ]
        ids = [row[0] for row in delivery_rows]

        def insert(conn: sqlite3.Connection) -> list[domain.Delivery]:
            try:
                conn.executemany(self._q["insert_post"], post_rows)
                inserted = 0
                for row in delivery_rows:
                    inserted += conn.execute(self._q["insert_delivery"], row).rowcount
            except sqlite3.IntegrityError as exc:
                raise InvalidInput("a post or delivery with this id already exists") from exc
            if inserted != len(delivery_rows):
                raise NotFound("channel", missing_channel(conn, delivery_rows))
            found = {d.id: d for d in _deliveries_where(conn, "id", ids)}
            return [found[i] for i in ids]

        return await self._writer.transaction(insert)

    async def deliveries_of(self, post_ids: Sequence[str]) -> dict[str, list[domain.Delivery]]:
        found = await self._reader.run(lambda c: _deliveries_where(c, "post_id", post_ids))
        return by_post(post_ids, found)

    # -- engine -----------------------------------------------------------------------------
    async def claim_due(self, **asked: Unpack[ClaimRequest]) -> domain.ClaimBatch:
        token = new_claim_token()
        params = {
            "now": micros(asked["now"]),
            "expire_before": micros(asked["expire_before"]),
            "token": token,
            "lease_until": micros(asked["lease_until"]),
            "limit": asked["limit"],
            "engine_id": asked.get("engine_id"),
        }

        def claim(conn: sqlite3.Connection) -> domain.ClaimBatch:
            expired = [decode.delivery(r) for r in conn.execute(self._q["expire_due"], params)]
            claimed = [decode.delivery(r) for r in conn.execute(self._q["claim_due"], params)]
            return domain.ClaimBatch(jobs=_jobs(conn, claimed, token), expired=expired)

        return await self._writer.transaction(claim)

    async def next_due_at(self) -> datetime | None:
        row = await self._fetchrow("next_due_at")
        return None if row is None else decode.instant(row["next_attempt_at"])

    async def apply(self, transitions: Sequence[domain.Transition]) -> list[bool]:
        now = domain.utcnow()
        stamp = micros(now)
        writes = [(self._apply_sql[t.target], _transition_params(t, stamp)) for t in transitions]
        event_sql = self._q["delivery_event"]

        def write(conn: sqlite3.Connection) -> list[bool]:
            done = [conn.execute(sql, params).rowcount == 1 for sql, params in writes]
            attempts = [
                _attempt_row(t.attempt)
                for t, ok in zip(transitions, done, strict=True)
                if ok and t.attempt is not None
            ]
            conn.executemany(self._q["insert_attempt"], attempts)
            for t, ok in zip(transitions, done, strict=True):
                if ok and t.event is not None:
                    conn.execute(
                        event_sql,
                        {
                            "id": t.delivery_id,
                            "event": t.event,
                            "now": stamp,
                            "now_iso": now.astimezone(UTC).isoformat(),
                        },
                    )
            return done

        return await self._writer.transaction(write)

    async def extend_leases(self, claim_tokens: Sequence[str], lease_until: datetime) -> int:
        values = [(micros(lease_until), token) for token in claim_tokens]

        def extend(conn: sqlite3.Connection) -> int:
            return sum(conn.execute(self._q["extend_leases"], v).rowcount for v in values)

        return await self._writer.transaction(extend)

    async def adopt(
        self, claims: Sequence[tuple[str, str]], *, engine_id: str, lease_until: datetime
    ) -> Adopted:
        token = new_claim_token()
        common = {"token": token, "engine_id": engine_id, "lease_until": micros(lease_until)}
        sql = self._q["adopt_claim"]

        def adopt(conn: sqlite3.Connection) -> frozenset[str]:
            return frozenset(
                delivery_id
                for delivery_id, old in claims
                if conn.execute(sql, {**common, "id": delivery_id, "old": old}).rowcount == 1
            )

        return Adopted(token, await self._writer.transaction(adopt))

    async def recover_expired_leases(self, now: datetime, *, every: bool = False) -> int:
        params = {"now": micros(now), "every": 1 if every else 0, "engines": "[]"}
        return await self._writer.transaction(lambda conn: self._release(conn, params))

    async def beat(self, engine: EngineInfo, now: datetime) -> bool:
        params = {
            "id": engine.id,
            "host": engine.host,
            "pid": engine.pid,
            "started_at": micros(engine.started_at),
            "now": micros(now),
        }

        def beat(conn: sqlite3.Connection) -> bool:
            if conn.execute(self._q["beat"], params).rowcount:
                return True
            conn.execute(self._q["register_engine"], params)
            return False

        return await self._writer.transaction(beat)

    async def _remove_engines(
        self, engine_ids: Sequence[str], now: datetime, dead_before: datetime | None
    ) -> Recovered:
        removing = {"engines": json.dumps(list(engine_ids)), "dead_before": micros(dead_before)}

        def remove(conn: sqlite3.Connection) -> Recovered:
            gone = sorted(r["id"] for r in conn.execute(self._q["remove_engines"], removing))
            params = {"now": micros(now), "every": 0, "engines": json.dumps(gone)}
            return Recovered(tuple(gone), self._release(conn, params))

        return await self._writer.transaction(remove)

    def _release(self, conn: sqlite3.Connection, params: dict[str, Any]) -> int:
        """Release the claims ``params`` name (recover_claims), first recording the sends of
        those still publishing as ``abandoned``: the platform may have counted them."""
        conn.execute(self._q["record_abandoned_sends"], {**params, "error": ABANDONED_ERROR})
        released: int = conn.execute(self._q["recover_claims"], params).rowcount
        return released


def _jobs(conn: sqlite3.Connection, claimed: list[domain.Delivery], token: str) -> list[domain.Job]:
    """The claimed deliveries with their channels and contents, in due order."""
    if not claimed:
        return []
    claimed.sort(key=lambda d: (d.next_attempt_at or d.due_at, d.id))
    post_ids = list({d.post_id for d in claimed})
    channel_ids = list({d.channel_id for d in claimed})
    posts = {p.id: p for p in map(decode.post, _select_in(conn, POST_COLUMNS, "posts", post_ids))}
    channels = {
        c.id: c
        for c in map(decode.channel, _select_in(conn, CHANNEL_COLUMNS, "channels", channel_ids))
    }
    return [
        domain.Job(d, channels[d.channel_id], posts[d.post_id].content_for(d.platform), token)
        for d in claimed
    ]


def _deliveries_where(
    conn: sqlite3.Connection, column: str, values: Sequence[str]
) -> list[domain.Delivery]:
    found = _select_in(conn, DELIVERY_COLUMNS, "deliveries", values, column=column)
    return [decode.delivery(row) for row in found]


def _attempt_row(a: domain.Attempt) -> tuple[Any, ...]:
    return (
        a.delivery_id,
        a.number,
        micros(a.started_at),
        micros(a.finished_at),
        a.outcome,
        a.error,
        usage_json(a.page_usage),
    )


def _transition_params(t: domain.Transition, now: int | None) -> dict[str, Any]:
    return {
        "id": t.delivery_id,
        "target": t.target.value,
        "token": t.claim_token,
        "due_at": micros(t.due_at),
        "next_attempt_at": micros(t.next_attempt_at),
        "lease_until": micros(t.lease_until),
        "external_id": t.external_id,
        "error": t.error,
        "sent": 1 if t.sent else 0,
        "retry_spent": 1 if t.retry_spent else 0,
        "check_failed": 1 if t.check_failed else 0,
        "unclaimed": 1 if t.unclaimed else 0,
        "unheld": 1 if t.unheld else 0,
        "reset_retries": 1 if t.reset_retries else 0,
        "check_first": None if t.check_first is None else int(t.check_first),
        "check_since": micros(t.check_since),
        "reconciled": 1 if t.reconciled else 0,
        "published_at": micros(t.published_at),
        "now": now,
    }


def _select_in(
    conn: sqlite3.Connection,
    columns: Sequence[str],
    table: str,
    values: Sequence[str],
    *,
    column: str = "id",
) -> Iterable[sqlite3.Row]:
    """Rows of ``table`` whose ``column`` is one of ``values``, in statements of 500 values
    (below the 999 bound parameters that older SQLite builds allow)."""
    select = f"SELECT {', '.join(columns)} FROM {table} WHERE {column} IN"
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        yield from conn.execute(f"{select} ({','.join('?' * len(chunk))})", chunk)
