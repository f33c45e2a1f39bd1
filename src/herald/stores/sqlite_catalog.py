"""The part of the SQLite store's catalogue and webhook outbox it writes its own way (the
rest is :class:`~herald.stores.sql_common.SQLCommon`'s), and how it runs a named query for
SQLCommon: on the reader connection, or in a transaction of the writer. Mixed into
:class:`herald.stores.sqlite.SQLiteStore`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Unpack

from herald.domain import Platform, Post, PostingSlot, WebhookEvent, WebhookHealth
from herald.errors import InvalidInput, NotFound
from herald.stores.contract import (
    PostFilters,
    PostQuery,
    first_id_of_day,
    new_claim_token,
    start_of_day,
)
from herald.stores.rows import POST_COLUMNS, micros
from herald.stores.rows import SQLITE as decode
from herald.stores.sql_common import DUPLICATE, SQLCommon
from herald.stores.sqlite_conn import ThreadedConnection
from herald.types import KeyClaimed, KeyStart

__all__ = ["SQLiteCatalog", "list_posts_sql"]

#: A listing without the posts an import holds (herald.domain.Delivery.held): a look-up in
#: deliveries_held, which only imports in progress fill.
_NOT_HELD = (
    "NOT EXISTS (SELECT 1 FROM deliveries h INDEXED BY deliveries_held WHERE h.post_id = p.id "
    "AND h.state = 'scheduled' AND h.next_attempt_at IS NULL AND h.attempts = 0)"
)


class SQLiteCatalog(SQLCommon):
    _decode = decode
    _q: Mapping[str, str]
    _writer: ThreadedConnection
    _reader: ThreadedConnection

    # -- channels -------------------------------------------------------------------------
    async def delete_channel(self, channel_id: str, at: datetime) -> int:
        stamp = micros(at)

        def delete(conn: sqlite3.Connection) -> int:
            if conn.execute(self._q["delete_channel"], (stamp, channel_id)).rowcount == 0:
                raise NotFound("channel", channel_id)
            return conn.execute(self._q["cancel_channel_deliveries"], (stamp, channel_id)).rowcount

        return await self._writer.transaction(delete)

    async def set_schedule(self, channel_id: str, slots: Sequence[PostingSlot]) -> None:
        values = sorted({(channel_id, s.weekday, s.time.hour * 60 + s.time.minute) for s in slots})

        def replace(conn: sqlite3.Connection) -> None:
            if (
                conn.execute("SELECT 1 FROM channels WHERE id = ?", (channel_id,)).fetchone()
                is None
            ):
                raise NotFound("channel", channel_id)
            conn.execute(self._q["delete_schedule"], (channel_id,))
            conn.executemany(self._q["insert_slot"], values)

        await self._writer.transaction(replace)

    # -- posts ----------------------------------------------------------------------------
    async def list_posts(self, workspace_id: str, **filters: Unpack[PostFilters]) -> list[Post]:
        sql, args = list_posts_sql(PostQuery(workspace_id, **filters))
        found = await self._reader.run(lambda c: c.execute(sql, args).fetchall())
        return [decode.post(r) for r in found]

    # -- idempotency keys -------------------------------------------------------------------
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
        token = new_claim_token()
        claim = {
            "workspace_id": workspace_id,
            "key": key,
            "fingerprint": fingerprint,
            "token": token,
            "now": micros(now),
            "locked_until": micros(locked_until),
            "expires_at": micros(expires_at),
        }

        # One write transaction (BEGIN IMMEDIATE): every connection to the file takes turns.
        def begin(conn: sqlite3.Connection) -> KeyStart:
            if conn.execute(self._q["begin_idempotent"], claim).fetchall():
                return KeyClaimed(token)
            row = conn.execute(
                self._q["get_idempotency_key"], {"workspace_id": workspace_id, "key": key}
            ).fetchone()
            return self._judged(row, fingerprint, now)

        return await self._writer.transaction(begin, marks=False)

    # -- webhooks and their outbox --------------------------------------------------------
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
        params = {
            "now": micros(now),
            "lease_until": micros(lease_until),
            "limit": limit,
            "per_webhook": per_webhook or limit,
            "per_workspace": per_workspace or limit,
            "probes": probes or limit,
        }

        def claim(conn: sqlite3.Connection) -> list[WebhookEvent]:
            conn.execute(self._q["recover_webhook_events"], params)
            found = conn.execute(self._q["claim_webhook_events"], params).fetchall()
            return [decode.event(r) for r in found]

        return await self._writer.transaction(claim)

    async def settle_webhook_event(
        self,
        event_id: str,
        *,
        sent: bool,
        next_attempt_at: datetime | None,
        error: str | None,
        at: datetime,
    ) -> WebhookHealth | None:
        params = {
            "id": event_id,
            "sent": 1 if sent else 0,
            "next_attempt_at": micros(next_attempt_at),
            "error": error,
            "at": micros(at),
        }

        def settle(conn: sqlite3.Connection) -> WebhookHealth | None:
            row = conn.execute(self._q["settle_webhook_event"], params).fetchone()
            if row is None:
                return None  # not sending any more: its lease ran out, another sender has it
            counted = {**params, "webhook_id": row["webhook_id"]}
            health = conn.execute(self._q["count_webhook_outcome"], counted).fetchone()
            return decode.health(health)

        return await self._writer.transaction(settle)

    async def disable_webhook(self, webhook_id: str, *, reason: str, at: datetime) -> bool:
        params = {
            "id": webhook_id,
            "reason": reason,
            "at": micros(at),
            "now": micros(at),
            "now_iso": at.astimezone(UTC).isoformat(),
        }

        def disable(conn: sqlite3.Connection) -> bool:
            row = conn.execute(self._q["disable_webhook"], params).fetchone()
            if row is None:
                return False
            told = {**params, "url": row["url"], "workspace_id": row["workspace_id"]}
            conn.execute(self._q["webhook_disabled_event"], told)
            return True

        return await self._writer.transaction(disable)

    async def record_platform_event(
        self, platform: Platform, event: str, payload: Mapping[str, object], at: datetime
    ) -> int:
        params = {
            "platform": platform.value,
            "event": event,
            "payload": json.dumps(dict(payload)),
            "now": micros(at),
            "day": micros(start_of_day(at)),
            "day_id": first_id_of_day("evt", at),
            "version": str(payload.get("version")),
        }

        def record(conn: sqlite3.Connection) -> int:
            recorded: int = conn.execute(self._q["platform_event"], params).rowcount
            return recorded

        return await self._writer.transaction(record)

    # -- named queries, for SQLCommon ------------------------------------------------------
    async def _execute(self, query: str, missing: NotFound | None = None, /, **values: Any) -> int:
        sql = self._q[query]

        def execute(conn: sqlite3.Connection) -> int:
            changed: int = conn.execute(sql, values).rowcount
            if changed == 0 and missing is not None:
                raise missing
            return changed

        return await self._writer.transaction(execute)

    async def _write_keys(self, queries: Sequence[str], /, **values: Any) -> list[int]:
        statements = [self._q[q] for q in queries]

        def write(conn: sqlite3.Connection) -> list[int]:
            return [conn.execute(sql, values).rowcount for sql in statements]

        return await self._writer.transaction(write, marks=False)

    async def _insert(self, query: str, /, **values: Any) -> None:
        sql = self._q[query]

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(sql, values)
            except sqlite3.IntegrityError as exc:
                raise InvalidInput(DUPLICATE[query]) from exc

        await self._writer.transaction(insert)

    async def _fetch(self, query: str, /, **values: Any) -> list[sqlite3.Row]:
        sql = self._q[query]
        return await self._reader.run(lambda c: c.execute(sql, values).fetchall())

    async def _fetchrow(self, query: str, /, **values: Any) -> sqlite3.Row | None:
        sql = self._q[query]
        return await self._reader.run(lambda c: c.execute(sql, values).fetchone())

    async def _erase(self, queries: Sequence[str], workspace_id: str) -> list[int]:
        statements = [self._q[q] for q in queries]

        def erase(conn: sqlite3.Connection) -> list[int]:
            counts = [conn.execute(sql, {"id": workspace_id}).rowcount for sql in statements]
            if counts[-1] == 0:
                raise NotFound("workspace", workspace_id)
            return counts

        return await self._writer.transaction(erase)

    def _instant(self, at: datetime) -> int | None:
        return micros(at)


def list_posts_sql(query: PostQuery) -> tuple[str, list[Any]]:
    """The statement that reads one page of a workspace's posts, and its arguments.

    A filter probes each post's deliveries by ``deliveries_post``, named: left to itself (no
    statistics) the planner took ``deliveries_channel_due`` for a channel filter and walked
    every delivery of the channel for each post (20 ms a page of 50 posts among 20,000,
    growing with the channel; 0.2 ms by post)."""
    where = ["p.workspace_id = ?"]
    args: list[Any] = [query.workspace_id]
    if query.after is not None:
        where.append("(p.created_at > ? OR (p.created_at = ? AND p.id > ?))")
        args += [micros(query.after[0]), micros(query.after[0]), query.after[1]]
    if query.filtered:
        inner, inner_args = _delivery_filter(query)
        where.append(
            "EXISTS (SELECT 1 FROM deliveries d INDEXED BY deliveries_post "
            f"WHERE d.post_id = p.id AND {inner})"
        )
        args += inner_args
    if not query.with_held:
        where.append(_NOT_HELD)
    sql = (
        f"SELECT {', '.join(f'p.{c}' for c in POST_COLUMNS)} FROM posts p "
        f"WHERE {' AND '.join(where)} ORDER BY p.created_at, p.id LIMIT ?"
    )
    return sql, [*args, query.limit]


def _delivery_filter(query: PostQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for clause, value in (
        ("d.state = ?", None if query.state is None else query.state.value),
        ("d.channel_id = ?", query.channel_id),
        ("d.due_at >= ?", micros(query.due_from)),
        ("d.due_at < ?", micros(query.due_to)),
    ):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    return " AND ".join(clauses), args
