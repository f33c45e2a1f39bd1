"""The SQLite store: Herald's embedded, zero-setup source of truth.

WAL mode, one writer connection and one reader connection, each in its own thread. Writes
come in batches (a claim of hundreds of deliveries, a group of outcomes) so one fsync covers
many deliveries. Queries live in ``stores/sql/sqlite.sql``.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from herald.domain import (
    Attempt,
    Channel,
    ChannelStatus,
    ClaimBatch,
    Content,
    ContentOverride,
    Delivery,
    Job,
    NewPost,
    Platform,
    Post,
    Transition,
    utcnow,
)
from herald.errors import ConfigError, InvalidInput, NotFound
from herald.states import DeliveryState, allowed_sources
from herald.stores.queries import load_queries
from herald.stores.sqlite_conn import ThreadedConnection, apply_migrations

__all__ = ["SQLiteStore", "sqlite_path"]

DELIVERY_COLUMNS = (
    "id, post_id, channel_id, platform, due_at, state, next_attempt_at, attempts, retries, checks, "
    "check_first, check_since, external_id, reconciled, last_error, published_at, updated_at"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _us(instant: datetime | None) -> int | None:
    return None if instant is None else (instant - _EPOCH) // _US


def _dt(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        post_id=row[1],
        channel_id=row[2],
        platform=Platform(row[3]),
        due_at=_EPOCH + timedelta(microseconds=row[4]),
        state=DeliveryState(row[5]),
        next_attempt_at=_dt(row[6]),
        attempts=row[7],
        retries=row[8],
        checks=row[9],
        check_first=bool(row[10]),
        check_since=_dt(row[11]),
        external_id=row[12],
        reconciled=bool(row[13]),
        last_error=row[14],
        published_at=_dt(row[15]),
        updated_at=_dt(row[16]),
    )


def _channel(row: Sequence[Any]) -> Channel:
    return Channel(
        id=row[0],
        platform=Platform(row[1]),
        external_id=row[2],
        name=row[3],
        timezone=row[4],
        credentials_ref=row[5],
        status=ChannelStatus(row[6]),
    )


def _post(row: Sequence[Any]) -> Post:
    overrides = {
        Platform(name): ContentOverride.from_dict(raw) for name, raw in json.loads(row[2]).items()
    }
    return Post(
        id=row[0],
        content=Content.from_dict(json.loads(row[1])),
        overrides=overrides,
        created_at=_EPOCH + timedelta(microseconds=row[3]),
    )


def _placeholders(count: int) -> str:
    return ",".join("?" * count)


def sqlite_path(database_url: str) -> str:
    """The file path in ``sqlite:///relative.db`` or ``sqlite:////absolute.db``."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix) or len(database_url) == len(prefix):
        raise ConfigError(f"not a SQLite URL with a file path: {database_url!r}")
    path = database_url[len(prefix) :]
    if path == ":memory:":
        raise ConfigError("the SQLite store needs a file (two connections share it)")
    return path


class SQLiteStore:
    """Implements :class:`herald.types.Store` on a SQLite file."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self._q = load_queries("sqlite")
        self._writer = ThreadedConnection(self.path, synchronous=synchronous, name="herald-db-w")
        self._reader = ThreadedConnection(self.path, synchronous=synchronous, name="herald-db-r")
        sources = {t: ",".join(f"'{s.value}'" for s in allowed_sources(t)) for t in DeliveryState}
        self._apply_sql = {
            t: self._q["apply_transition"].replace("{sources}", srcs) for t, srcs in sources.items()
        }

    def _sql(self, name: str) -> str:
        return self._q[name].replace("{columns}", DELIVERY_COLUMNS)

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        await self._writer.run(apply_migrations)
        await self._reader.open()

    async def close(self) -> None:
        await self._writer.close()
        await self._reader.close()

    # -- catalogue --------------------------------------------------------------------------
    async def add_channels(self, channels: Sequence[Channel]) -> None:
        now = _us(utcnow())
        rows = [
            (
                c.id,
                c.platform.value,
                c.external_id,
                c.name,
                c.timezone,
                c.credentials_ref,
                c.status.value,
                now,
            )
            for c in channels
        ]

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.executemany(self._q["insert_channel"], rows)
            except sqlite3.IntegrityError as exc:
                raise InvalidInput(
                    "a channel with this id or platform account already exists", field="id"
                ) from exc

        await self._writer.transaction(insert)

    async def get_channel(self, channel_id: str) -> Channel:
        row = await self._reader.run(
            lambda c: c.execute(self._q["get_channel"], (channel_id,)).fetchone()
        )
        if row is None:
            raise NotFound("channel", channel_id)
        return _channel(row)

    async def list_channels(self) -> list[Channel]:
        rows = await self._reader.run(lambda c: c.execute(self._q["list_channels"]).fetchall())
        return [_channel(r) for r in rows]

    async def set_channel_status(
        self, channel_id: str, status: ChannelStatus, *, credentials_ref: str | None = None
    ) -> None:
        def update(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                self._q["set_channel_status"], (status.value, credentials_ref, channel_id)
            )
            return cursor.rowcount

        if await self._writer.transaction(update) == 0:
            raise NotFound("channel", channel_id)

    async def add_posts(self, posts: Sequence[NewPost]) -> list[Delivery]:
        now = _us(utcnow())
        post_rows = [
            (
                new.post.id,
                json.dumps(new.post.content.to_dict(), separators=(",", ":")),
                json.dumps(
                    {p.value: o.to_dict() for p, o in new.post.overrides.items()},
                    separators=(",", ":"),
                ),
                _us(new.post.created_at),
            )
            for new in posts
        ]
        delivery_rows = [
            (delivery_id, new.post.id, _us(new.due_at), _us(new.due_at), now, channel_id)
            for new in posts
            for delivery_id, channel_id in new.targets
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
            return self._deliveries_by_id(conn, ids)

        return await self._writer.transaction(insert)

    def _deliveries_by_id(self, conn: sqlite3.Connection, ids: Sequence[str]) -> list[Delivery]:
        found: dict[str, Delivery] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = _placeholders(len(chunk))
            sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id IN ({marks})"
            found.update((row[0], _delivery(row)) for row in conn.execute(sql, chunk))
        return [found[i] for i in ids]

    async def get_post(self, post_id: str) -> Post:
        row = await self._reader.run(
            lambda c: c.execute(self._q["get_post"], (post_id,)).fetchone()
        )
        if row is None:
            raise NotFound("post", post_id)
        return _post(row)

    async def get_delivery(self, delivery_id: str) -> Delivery:
        sql = self._sql("get_delivery")
        row = await self._reader.run(lambda c: c.execute(sql, (delivery_id,)).fetchone())
        if row is None:
            raise NotFound("delivery", delivery_id)
        return _delivery(row)

    async def list_deliveries(
        self, *, state: DeliveryState | None = None, limit: int = 1000, after_id: str = ""
    ) -> list[Delivery]:
        args: tuple[str | int, ...]
        if state is None:
            sql, args = self._sql("list_deliveries"), (after_id, limit)
        else:
            sql, args = self._sql("list_deliveries_in_state"), (state.value, after_id, limit)
        rows = await self._reader.run(lambda c: c.execute(sql, args).fetchall())
        return [_delivery(r) for r in rows]

    async def list_attempts(self, delivery_id: str) -> list[Attempt]:
        rows = await self._reader.run(
            lambda c: c.execute(self._q["list_attempts"], (delivery_id,)).fetchall()
        )
        return [
            Attempt(r[0], r[1], _EPOCH + r[2] * _US, _EPOCH + r[3] * _US, r[4], r[5]) for r in rows
        ]

    async def count_by_state(self) -> dict[DeliveryState, int]:
        rows = await self._reader.run(lambda c: c.execute(self._q["count_by_state"]).fetchall())
        return {DeliveryState(state): count for state, count in rows}

    # -- engine -----------------------------------------------------------------------------
    async def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, expire_before: datetime
    ) -> ClaimBatch:
        token = secrets.token_hex(12)
        params = {
            "now": _us(now),
            "expire_before": _us(expire_before),
            "token": token,
            "lease_until": _us(lease_until),
            "limit": limit,
        }
        expire_sql, claim_sql = self._sql("expire_due"), self._sql("claim_due")

        def claim(conn: sqlite3.Connection) -> ClaimBatch:
            expired = [_delivery(r) for r in conn.execute(expire_sql, params).fetchall()]
            claimed = [_delivery(r) for r in conn.execute(claim_sql, params).fetchall()]
            jobs = self._jobs(conn, claimed, token)
            return ClaimBatch(jobs=jobs, expired=expired)

        return await self._writer.transaction(claim)

    def _jobs(self, conn: sqlite3.Connection, claimed: list[Delivery], token: str) -> list[Job]:
        if not claimed:
            return []
        claimed.sort(key=lambda d: (d.next_attempt_at or d.due_at, d.id))
        post_ids = list({d.post_id for d in claimed})
        channel_ids = list({d.channel_id for d in claimed})
        posts = {
            row[0]: _post(row)
            for row in _select_in(
                conn, "SELECT id, content, overrides, created_at FROM posts", post_ids
            )
        }
        channels = {
            row[0]: _channel(row)
            for row in _select_in(
                conn,
                "SELECT id, platform, external_id, name, timezone, credentials_ref, status "
                "FROM channels",
                channel_ids,
            )
        }
        return [
            Job(d, channels[d.channel_id], posts[d.post_id].content_for(d.platform), token)
            for d in claimed
        ]

    async def next_due_at(self) -> datetime | None:
        row = await self._reader.run(lambda c: c.execute(self._q["next_due_at"]).fetchone())
        return _dt(row[0]) if row else None

    async def apply(self, transitions: Sequence[Transition]) -> list[bool]:
        now = _us(utcnow())
        rows = [(self._apply_sql[t.target], _transition_params(t, now)) for t in transitions]
        attempts = [
            (a.delivery_id, a.number, _us(a.started_at), _us(a.finished_at), a.outcome, a.error)
            for t in transitions
            if (a := t.attempt) is not None
        ]

        def write(conn: sqlite3.Connection) -> list[bool]:
            done = [conn.execute(sql, params).rowcount == 1 for sql, params in rows]
            kept = [
                row
                for row, ok in zip(attempts, _attempt_flags(transitions, done), strict=True)
                if ok
            ]
            conn.executemany(self._q["insert_attempt"], kept)
            return done

        return await self._writer.transaction(write)

    async def extend_leases(self, claim_tokens: Sequence[str], lease_until: datetime) -> int:
        rows = [(_us(lease_until), token) for token in claim_tokens]

        def extend(conn: sqlite3.Connection) -> int:
            return sum(conn.execute(self._q["extend_leases"], row).rowcount for row in rows)

        return await self._writer.transaction(extend)

    async def recover_expired_leases(self, now: datetime, *, every: bool = False) -> int:
        sql = self._q["recover_expired_leases"]
        params = {"now": _us(now), "every": 1 if every else 0}
        return await self._writer.transaction(lambda c: c.execute(sql, params).rowcount)


def _attempt_flags(transitions: Sequence[Transition], done: list[bool]) -> list[bool]:
    """For each transition that carries an attempt record, whether the transition took effect."""
    return [ok for t, ok in zip(transitions, done, strict=True) if t.attempt is not None]


def _transition_params(t: Transition, now: int | None) -> dict[str, Any]:
    return {
        "id": t.delivery_id,
        "target": t.target.value,
        "token": t.claim_token,
        "due_at": _us(t.due_at),
        "next_attempt_at": _us(t.next_attempt_at),
        "lease_until": _us(t.lease_until),
        "external_id": t.external_id,
        "error": t.error,
        "sent": 1 if t.sent else 0,
        "retry_spent": 1 if t.retry_spent else 0,
        "check_failed": 1 if t.check_failed else 0,
        "reset_retries": 1 if t.reset_retries else 0,
        "check_first": None if t.check_first is None else int(t.check_first),
        "check_since": _us(t.check_since),
        "reconciled": 1 if t.reconciled else 0,
        "published_at": _us(t.published_at),
        "now": now,
    }


def _select_in(conn: sqlite3.Connection, select: str, ids: Sequence[str]) -> Iterable[Any]:
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        yield from conn.execute(f"{select} WHERE id IN ({_placeholders(len(chunk))})", chunk)


def _missing_channel(conn: sqlite3.Connection, delivery_rows: Sequence[tuple[Any, ...]]) -> str:
    for row in delivery_rows:
        channel_id = row[-1]
        if conn.execute("SELECT 1 FROM channels WHERE id = ?", (channel_id,)).fetchone() is None:
            return str(channel_id)
    return "?"
