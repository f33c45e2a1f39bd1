"""The SQLite store: Herald's embedded, zero-setup source of truth.

WAL mode, one writer connection and one reader connection, each in its own thread. Writes
come in batches (a claim of hundreds of deliveries, a group of outcomes) so one fsync covers
many deliveries. Queries live in ``stores/sql/sqlite.sql``; the catalogue and the webhook
outbox are in :mod:`herald.stores.sqlite_catalog`.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from herald.domain import (
    Attempt,
    Channel,
    ChannelStatus,
    ClaimBatch,
    Delivery,
    Job,
    NewPost,
    Post,
    SentRecord,
    Transition,
    utcnow,
)
from herald.errors import ConfigError, InvalidInput, NotFound
from herald.states import DeliveryState
from herald.stores import sqlite_rows as rows
from herald.stores.queries import for_each_target, load_queries
from herald.stores.sqlite_catalog import SQLiteCatalog
from herald.stores.sqlite_conn import ThreadedConnection, apply_migrations

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


class SQLiteStore(SQLiteCatalog):
    """Implements :class:`herald.types.Store` on a SQLite file."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self._q = {
            name: sql.replace("{columns}", rows.DELIVERY_COLUMNS)
            .replace("{channel_columns}", rows.CHANNEL_COLUMNS)
            .replace("{post_columns}", rows.POST_COLUMNS)
            for name, sql in load_queries("sqlite").items()
        }
        self._writer = ThreadedConnection(self.path, synchronous=synchronous, name="herald-db-w")
        self._reader = ThreadedConnection(self.path, synchronous=synchronous, name="herald-db-r")
        self._apply_sql = for_each_target(self._q["apply_transition"])

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        await self._writer.run(apply_migrations)
        await self._reader.open()

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()

    # -- channels, as the engine sees them --------------------------------------------------
    async def add_channels(self, channels: Sequence[Channel]) -> None:
        now = rows.us(utcnow())
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

    async def get_channel(self, channel_id: str) -> Channel:
        sql = self._q["get_channel"]
        row = await self._reader.run(lambda c: c.execute(sql, (channel_id,)).fetchone())
        if row is None:
            raise NotFound("channel", channel_id)
        return rows.channel(row)

    async def set_channel_status(
        self,
        channel_id: str,
        status: ChannelStatus,
        *,
        credentials_ref: str | None = None,
        event: str | None = None,
    ) -> None:
        now = utcnow()

        def update(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                self._q["set_channel_status"], (status.value, credentials_ref, channel_id)
            )
            if cursor.rowcount and event is not None:
                params = {
                    "id": channel_id,
                    "event": event,
                    "now": rows.us(now),
                    "now_iso": now.isoformat(),
                }
                conn.execute(self._q["channel_event"], params)
            return cursor.rowcount

        if await self._writer.transaction(update) == 0:
            raise NotFound("channel", channel_id)

    # -- posts and deliveries ---------------------------------------------------------------
    async def add_posts(self, posts: Sequence[NewPost]) -> list[Delivery]:
        now = rows.us(utcnow())
        post_rows = [rows.post_row(new.post) for new in posts]
        delivery_rows = [
            (d.id, new.post.id, rows.us(d.due_at), rows.us(d.due_at), now, d.channel_id)
            for new in posts
            for d in new.deliveries
        ]
        ids = [row[0] for row in delivery_rows]

        def insert(conn: sqlite3.Connection) -> list[Delivery]:
            try:
                conn.executemany(self._q["insert_post"], post_rows)
                inserted = 0
                for row in delivery_rows:
                    inserted += conn.execute(self._q["insert_delivery"], row).rowcount
            except sqlite3.IntegrityError as exc:
                raise InvalidInput("a post or delivery with this id already exists") from exc
            if inserted != len(delivery_rows):
                raise NotFound("channel", _missing_channel(conn, delivery_rows))
            found = {d.id: d for d in self._deliveries_where(conn, "id", ids)}
            return [found[i] for i in ids]

        return await self._writer.transaction(insert)

    def _deliveries_where(
        self, conn: sqlite3.Connection, column: str, values: Sequence[str]
    ) -> list[Delivery]:
        return [
            rows.delivery(row)
            for row in _select_in(
                conn, f"SELECT {rows.DELIVERY_COLUMNS} FROM deliveries", values, column=column
            )
        ]

    async def get_post(self, post_id: str) -> Post:
        sql = self._q["get_post"]
        row = await self._reader.run(lambda c: c.execute(sql, (post_id,)).fetchone())
        if row is None:
            raise NotFound("post", post_id)
        return rows.post(row)

    async def deliveries_of(self, post_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        found = await self._reader.run(lambda c: self._deliveries_where(c, "post_id", post_ids))
        grouped: dict[str, list[Delivery]] = {p: [] for p in post_ids}
        for delivery in sorted(found, key=lambda d: (d.due_at, d.id)):
            grouped[delivery.post_id].append(delivery)
        return grouped

    async def get_delivery(self, delivery_id: str) -> Delivery:
        sql = self._q["get_delivery"]
        row = await self._reader.run(lambda c: c.execute(sql, (delivery_id,)).fetchone())
        if row is None:
            raise NotFound("delivery", delivery_id)
        return rows.delivery(row)

    async def list_deliveries(
        self, *, state: DeliveryState | None = None, limit: int = 1000, after_id: str = ""
    ) -> list[Delivery]:
        args: tuple[str | int, ...]
        if state is None:
            sql, args = self._q["list_deliveries"], (after_id, limit)
        else:
            sql, args = self._q["list_deliveries_in_state"], (state.value, after_id, limit)
        found = await self._reader.run(lambda c: c.execute(sql, args).fetchall())
        return [rows.delivery(r) for r in found]

    async def list_attempts(self, delivery_id: str) -> list[Attempt]:
        sql = self._q["list_attempts"]
        found = await self._reader.run(lambda c: c.execute(sql, (delivery_id,)).fetchall())
        return [rows.attempt(r) for r in found]

    async def count_by_state(self) -> dict[DeliveryState, int]:
        sql = self._q["count_by_state"]
        found = await self._reader.run(lambda c: c.execute(sql).fetchall())
        return {DeliveryState(state): count for state, count in found}

    # -- engine -----------------------------------------------------------------------------
    async def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, expire_before: datetime
    ) -> ClaimBatch:
        token = secrets.token_hex(12)
        params = {
            "now": rows.us(now),
            "expire_before": rows.us(expire_before),
            "token": token,
            "lease_until": rows.us(lease_until),
            "limit": limit,
        }

        def claim(conn: sqlite3.Connection) -> ClaimBatch:
            expired = [rows.delivery(r) for r in conn.execute(self._q["expire_due"], params)]
            claimed = [rows.delivery(r) for r in conn.execute(self._q["claim_due"], params)]
            return ClaimBatch(jobs=self._jobs(conn, claimed, token), expired=expired)

        return await self._writer.transaction(claim)

    def _jobs(self, conn: sqlite3.Connection, claimed: list[Delivery], token: str) -> list[Job]:
        if not claimed:
            return []
        claimed.sort(key=lambda d: (d.next_attempt_at or d.due_at, d.id))
        posts = {
            row[0]: rows.post(row)
            for row in _select_in(
                conn, f"SELECT {rows.POST_COLUMNS} FROM posts", list({d.post_id for d in claimed})
            )
        }
        channels = {
            row[0]: rows.channel(row)
            for row in _select_in(
                conn,
                f"SELECT {rows.CHANNEL_COLUMNS} FROM channels",
                list({d.channel_id for d in claimed}),
            )
        }
        return [
            Job(d, channels[d.channel_id], posts[d.post_id].content_for(d.platform), token)
            for d in claimed
        ]

    async def next_due_at(self) -> datetime | None:
        sql = self._q["next_due_at"]
        row = await self._reader.run(lambda c: c.execute(sql).fetchone())
        return rows.dt(row[0]) if row else None

    async def apply(self, transitions: Sequence[Transition]) -> list[bool]:
        now = utcnow()
        stamp = rows.us(now)
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

    async def sent_since(self, since: datetime) -> list[SentRecord]:
        sql, params = self._q["sent_since"], {"since": rows.us(since)}
        return rows.sent(await self._reader.run(lambda c: c.execute(sql, params).fetchall()))

    async def extend_leases(self, claim_tokens: Sequence[str], lease_until: datetime) -> int:
        values = [(rows.us(lease_until), token) for token in claim_tokens]

        def extend(conn: sqlite3.Connection) -> int:
            return sum(conn.execute(self._q["extend_leases"], v).rowcount for v in values)

        return await self._writer.transaction(extend)

    async def recover_expired_leases(self, now: datetime, *, every: bool = False) -> int:
        sql = self._q["recover_expired_leases"]
        params = {"now": rows.us(now), "every": 1 if every else 0}
        return await self._writer.transaction(lambda c: c.execute(sql, params).rowcount)


def _attempt_row(a: Attempt) -> tuple[Any, ...]:
    return (
        a.delivery_id,
        a.number,
        rows.us(a.started_at),
        rows.us(a.finished_at),
        a.outcome,
        a.error,
    )


def _transition_params(t: Transition, now: int | None) -> dict[str, Any]:
    return {
        "id": t.delivery_id,
        "target": t.target.value,
        "token": t.claim_token,
        "due_at": rows.us(t.due_at),
        "next_attempt_at": rows.us(t.next_attempt_at),
        "lease_until": rows.us(t.lease_until),
        "external_id": t.external_id,
        "error": t.error,
        "sent": 1 if t.sent else 0,
        "retry_spent": 1 if t.retry_spent else 0,
        "check_failed": 1 if t.check_failed else 0,
        "unclaimed": 1 if t.unclaimed else 0,
        "reset_retries": 1 if t.reset_retries else 0,
        "check_first": None if t.check_first is None else int(t.check_first),
        "check_since": rows.us(t.check_since),
        "reconciled": 1 if t.reconciled else 0,
        "published_at": rows.us(t.published_at),
        "now": now,
    }


def _select_in(
    conn: sqlite3.Connection, select: str, ids: Sequence[str], *, column: str = "id"
) -> Iterable[Any]:
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        yield from conn.execute(
            f"{select} WHERE {column} IN ({rows.placeholders(len(chunk))})", chunk
        )


def _missing_channel(conn: sqlite3.Connection, delivery_rows: Sequence[tuple[Any, ...]]) -> str:
    for row in delivery_rows:
        channel_id = row[-1]
        if conn.execute("SELECT 1 FROM channels WHERE id = ?", (channel_id,)).fetchone() is None:
            return str(channel_id)
    return "?"
