"""The SQLite store's catalogue (workspaces, keys, channels, slots, posts, webhooks) and its
webhook outbox. Mixed into :class:`herald.stores.sqlite.SQLiteStore`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from herald.domain import (
    ApiKey,
    Channel,
    Post,
    PostingSlot,
    Webhook,
    WebhookEvent,
    Workspace,
    utcnow,
)
from herald.errors import InvalidInput, NotFound
from herald.states import DeliveryState
from herald.stores import sqlite_rows as rows
from herald.stores.sqlite_conn import ThreadedConnection

__all__ = ["SQLiteCatalog"]


class SQLiteCatalog:
    _q: dict[str, str]
    _writer: ThreadedConnection
    _reader: ThreadedConnection

    # -- workspaces and keys ----------------------------------------------------------------
    async def add_workspace(self, workspace: Workspace) -> None:
        values = (workspace.id, workspace.name, rows.us(workspace.created_at))
        await self._insert("insert_workspace", values, "a workspace with this id exists")

    async def get_workspace(self, workspace_id: str) -> Workspace:
        row = await self._one("get_workspace", (workspace_id,))
        if row is None:
            raise NotFound("workspace", workspace_id)
        return rows.workspace(row)

    async def list_workspaces(self) -> list[Workspace]:
        return [rows.workspace(r) for r in await self._all("list_workspaces", ())]

    async def add_api_key(self, key: ApiKey, secret_hash: str) -> None:
        values = (
            key.id,
            key.workspace_id,
            key.prefix,
            secret_hash,
            key.name,
            rows.us(key.created_at),
        )
        await self._insert("insert_api_key", values, "an API key with this prefix exists")

    async def api_key_by_prefix(self, prefix: str) -> tuple[ApiKey, str] | None:
        row = await self._one("api_key_by_prefix", (prefix,))
        return None if row is None else (rows.api_key(row), row[6])

    async def list_api_keys(self, workspace_id: str) -> list[ApiKey]:
        return [rows.api_key(r) for r in await self._all("list_api_keys", (workspace_id,))]

    async def revoke_api_key(self, key_id: str, at: datetime) -> None:
        await self._change("revoke_api_key", (rows.us(at), key_id), "api key", key_id)

    # -- channels -------------------------------------------------------------------------
    async def list_channels(self, workspace_id: str | None = None) -> list[Channel]:
        if workspace_id is None:
            found = await self._all("list_channels", ())
        else:
            found = await self._all("list_workspace_channels", (workspace_id,))
        return [rows.channel(r) for r in found]

    async def update_channel(self, channel: Channel) -> None:
        values = (channel.name, channel.timezone, channel.credentials_ref, channel.id)
        await self._change("update_channel", values, "channel", channel.id)

    async def delete_channel(self, channel_id: str, at: datetime) -> int:
        stamp = rows.us(at)

        def delete(conn: sqlite3.Connection) -> int:
            if conn.execute(self._q["delete_channel"], (stamp, channel_id)).rowcount == 0:
                raise NotFound("channel", channel_id)
            return conn.execute(self._q["cancel_channel_deliveries"], (stamp, channel_id)).rowcount

        return await self._writer.transaction(delete)

    async def set_channel_secret(self, channel_id: str, ciphertext: bytes) -> None:
        await self._change("set_channel_secret", (ciphertext, channel_id), "channel", channel_id)

    async def get_channel_secret(self, channel_id: str) -> bytes | None:
        row = await self._one("get_channel_secret", (channel_id,))
        if row is None:
            raise NotFound("channel", channel_id)
        return None if row[0] is None else bytes(row[0])

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

    async def get_schedule(self, channel_id: str) -> list[PostingSlot]:
        return [rows.slot(r) for r in await self._all("get_schedule", (channel_id,))]

    async def busy_times(self, channel_id: str, start: datetime, end: datetime) -> set[datetime]:
        found = await self._all("busy_times", (channel_id, rows.us(start), rows.us(end)))
        return {rows.at(r[0]) for r in found}

    # -- posts ----------------------------------------------------------------------------
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
    ) -> list[Post]:
        where = ["p.workspace_id = ?"]
        args: list[Any] = [workspace_id]
        if after is not None:
            where.append("(p.created_at > ? OR (p.created_at = ? AND p.id > ?))")
            args += [rows.us(after[0]), rows.us(after[0]), after[1]]
        inner, inner_args = _delivery_filter(state, channel_id, due_from, due_to)
        if inner:
            where.append(f"EXISTS (SELECT 1 FROM deliveries d WHERE d.post_id = p.id AND {inner})")
            args += inner_args
        sql = (
            f"SELECT {', '.join('p.' + c for c in rows.POST_COLUMNS.split(', '))} FROM posts p "
            f"WHERE {' AND '.join(where)} ORDER BY p.created_at, p.id LIMIT ?"
        )
        args.append(limit)
        found = await self._reader.run(lambda c: c.execute(sql, args).fetchall())
        return [rows.post(r) for r in found]

    # -- webhooks and their outbox --------------------------------------------------------
    async def add_webhook(self, webhook: Webhook, secret_ciphertext: bytes) -> None:
        values = (
            webhook.id,
            webhook.workspace_id,
            webhook.url,
            json.dumps(list(webhook.events)),
            secret_ciphertext,
            rows.us(webhook.created_at),
        )
        await self._insert("insert_webhook", values, "a webhook with this id exists")

    async def list_webhooks(self, workspace_id: str) -> list[Webhook]:
        return [rows.webhook(r) for r in await self._all("list_webhooks", (workspace_id,))]

    async def get_webhook_secret(self, webhook_id: str) -> bytes:
        row = await self._one("get_webhook_secret", (webhook_id,))
        if row is None:
            raise NotFound("webhook", webhook_id)
        return bytes(row[0])

    async def set_webhook_secret(self, webhook_id: str, ciphertext: bytes) -> None:
        await self._change("set_webhook_secret", (ciphertext, webhook_id), "webhook", webhook_id)

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._change("delete_webhook", (rows.us(utcnow()), webhook_id), "webhook", webhook_id)

    async def claim_webhook_events(
        self, *, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookEvent]:
        params = {"now": rows.us(now), "lease_until": rows.us(lease_until), "limit": limit}

        def claim(conn: sqlite3.Connection) -> list[WebhookEvent]:
            conn.execute(self._q["recover_webhook_events"], params)
            return [rows.event(r) for r in conn.execute(self._q["claim_webhook_events"], params)]

        return await self._writer.transaction(claim)

    async def settle_webhook_event(
        self, event_id: str, *, sent: bool, next_attempt_at: datetime | None, error: str | None
    ) -> None:
        params = {
            "id": event_id,
            "sent": 1 if sent else 0,
            "next_attempt_at": rows.us(next_attempt_at),
            "error": error,
        }
        sql = self._q["settle_webhook_event"]
        await self._writer.transaction(lambda c: c.execute(sql, params))

    async def next_webhook_event_at(self) -> datetime | None:
        row = await self._one("next_webhook_event_at", ())
        return None if row is None else rows.dt(row[0])

    # -- helpers --------------------------------------------------------------------------
    async def _one(self, name: str, args: Sequence[Any]) -> Any:
        sql = self._q[name]
        return await self._reader.run(lambda c: c.execute(sql, args).fetchone())

    async def _all(self, name: str, args: Sequence[Any]) -> list[Any]:
        sql = self._q[name]
        return await self._reader.run(lambda c: c.execute(sql, args).fetchall())

    async def _insert(self, name: str, values: Sequence[Any], conflict: str) -> None:
        sql = self._q[name]

        def insert(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(sql, values)
            except sqlite3.IntegrityError as exc:
                raise InvalidInput(conflict) from exc

        await self._writer.transaction(insert)

    async def _change(self, name: str, values: Sequence[Any], kind: str, object_id: str) -> None:
        sql = self._q[name]
        if await self._writer.transaction(lambda c: c.execute(sql, values).rowcount) == 0:
            raise NotFound(kind, object_id)


def _delivery_filter(
    state: DeliveryState | None,
    channel_id: str | None,
    due_from: datetime | None,
    due_to: datetime | None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for clause, value in (
        ("d.state = ?", None if state is None else state.value),
        ("d.channel_id = ?", channel_id),
        ("d.due_at >= ?", rows.us(due_from)),
        ("d.due_at < ?", rows.us(due_to)),
    ):
        if value is not None:
            clauses.append(clause)
            args.append(value)
    return " AND ".join(clauses), args
