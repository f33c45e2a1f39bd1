"""The PostgreSQL store's catalogue (workspaces, keys, channels, slots, posts, webhooks) and its
webhook outbox. Mixed into :class:`herald.stores.postgres.PostgresStore`."""

from __future__ import annotations

import json
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
from herald.errors import NotFound
from herald.states import DeliveryState
from herald.stores import postgres_rows as rows
from herald.stores.postgres_conn import Database

__all__ = ["PostgresCatalog"]


class PostgresCatalog:
    _db: Database

    # -- workspaces and keys ----------------------------------------------------------------
    async def add_workspace(self, workspace: Workspace) -> None:
        async with self._db.connection("a workspace with this id exists") as conn:
            await conn.execute(
                self._db.q["insert_workspace"],
                id=workspace.id,
                name=workspace.name,
                created_at=workspace.created_at,
            )

    async def get_workspace(self, workspace_id: str) -> Workspace:
        row = await self._db.fetchrow("get_workspace", id=workspace_id)
        if row is None:
            raise NotFound("workspace", workspace_id)
        return rows.workspace(row)

    async def list_workspaces(self) -> list[Workspace]:
        return [rows.workspace(r) for r in await self._db.fetch("list_workspaces")]

    async def add_api_key(self, key: ApiKey, secret_hash: str) -> None:
        async with self._db.connection("an API key with this prefix exists") as conn:
            await conn.execute(
                self._db.q["insert_api_key"],
                id=key.id,
                workspace_id=key.workspace_id,
                prefix=key.prefix,
                secret_hash=secret_hash,
                name=key.name,
                created_at=key.created_at,
            )

    async def api_key_by_prefix(self, prefix: str) -> tuple[ApiKey, str] | None:
        row = await self._db.fetchrow("api_key_by_prefix", prefix=prefix)
        return None if row is None else (rows.api_key(row), row[6])

    async def list_api_keys(self, workspace_id: str) -> list[ApiKey]:
        found = await self._db.fetch("list_api_keys", workspace_id=workspace_id)
        return [rows.api_key(r) for r in found]

    async def revoke_api_key(self, key_id: str, at: datetime) -> None:
        if await self._db.execute("revoke_api_key", id=key_id, at=at) == 0:
            raise NotFound("api key", key_id)

    # -- channels -------------------------------------------------------------------------
    async def list_channels(self, workspace_id: str | None = None) -> list[Channel]:
        if workspace_id is None:
            found = await self._db.fetch("list_channels")
        else:
            found = await self._db.fetch("list_workspace_channels", workspace_id=workspace_id)
        return [rows.channel(r) for r in found]

    async def update_channel(self, channel: Channel) -> None:
        changed = await self._db.execute(
            "update_channel",
            id=channel.id,
            name=channel.name,
            timezone=channel.timezone,
            credentials_ref=channel.credentials_ref,
        )
        if changed == 0:
            raise NotFound("channel", channel.id)

    async def delete_channel(self, channel_id: str, at: datetime) -> int:
        row = await self._db.fetchrow("delete_channel", id=channel_id, at=at)
        if row is None:
            raise NotFound("channel", channel_id)
        cancelled: int = row[0]
        return cancelled

    async def set_channel_secret(self, channel_id: str, ciphertext: bytes) -> None:
        if await self._db.execute("set_channel_secret", id=channel_id, secret=ciphertext) == 0:
            raise NotFound("channel", channel_id)

    async def get_channel_secret(self, channel_id: str) -> bytes | None:
        row = await self._db.fetchrow("get_channel_secret", id=channel_id)
        if row is None:
            raise NotFound("channel", channel_id)
        return None if row[0] is None else bytes(row[0])

    async def set_schedule(self, channel_id: str, slots: Sequence[PostingSlot]) -> None:
        values = sorted({(s.weekday, s.time.hour * 60 + s.time.minute) for s in slots})
        async with self._db.transaction() as conn:
            # The channel's row lock serialises two replacements of the same schedule.
            if await conn.fetchrow(self._db.q["lock_channel"], id=channel_id) is None:
                raise NotFound("channel", channel_id)
            await conn.execute(self._db.q["delete_schedule"], id=channel_id)
            await conn.execute(
                self._db.q["insert_slots"],
                id=channel_id,
                weekdays=[w for w, _ in values],
                minutes=[m for _, m in values],
            )

    async def get_schedule(self, channel_id: str) -> list[PostingSlot]:
        return [rows.slot(r) for r in await self._db.fetch("get_schedule", id=channel_id)]

    async def busy_times(self, channel_id: str, start: datetime, end: datetime) -> set[datetime]:
        found = await self._db.fetch("busy_times", id=channel_id, start=start, end=end)
        return {r[0] for r in found}

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
        filters: dict[str, Any] = {
            "state": None if state is None else state.value,
            "channel_id": channel_id,
            "due_from": due_from,
            "due_to": due_to,
        }
        found = await self._db.fetch(
            "list_posts",
            workspace_id=workspace_id,
            after_at=None if after is None else after[0],
            after_id=None if after is None else after[1],
            filtered=any(v is not None for v in filters.values()),
            limit=limit,
            **filters,
        )
        return [rows.post(r) for r in found]

    # -- webhooks and their outbox --------------------------------------------------------
    async def add_webhook(self, webhook: Webhook, secret_ciphertext: bytes) -> None:
        async with self._db.connection("a webhook with this id exists") as conn:
            await conn.execute(
                self._db.q["insert_webhook"],
                id=webhook.id,
                workspace_id=webhook.workspace_id,
                url=webhook.url,
                events=json.dumps(list(webhook.events)),
                secret=secret_ciphertext,
                created_at=webhook.created_at,
            )

    async def list_webhooks(self, workspace_id: str) -> list[Webhook]:
        found = await self._db.fetch("list_webhooks", workspace_id=workspace_id)
        return [rows.webhook(r) for r in found]

    async def get_webhook_secret(self, webhook_id: str) -> bytes:
        row = await self._db.fetchrow("get_webhook_secret", id=webhook_id)
        if row is None:
            raise NotFound("webhook", webhook_id)
        return bytes(row[0])

    async def set_webhook_secret(self, webhook_id: str, ciphertext: bytes) -> None:
        if await self._db.execute("set_webhook_secret", id=webhook_id, secret=ciphertext) == 0:
            raise NotFound("webhook", webhook_id)

    async def delete_webhook(self, webhook_id: str) -> None:
        if await self._db.execute("delete_webhook", id=webhook_id, at=utcnow()) == 0:
            raise NotFound("webhook", webhook_id)

    async def claim_webhook_events(
        self, *, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookEvent]:
        async with self._db.transaction() as conn:
            # Events whose sender died go back to pending first, then are claimed with the rest.
            await conn.execute(self._db.q["recover_webhook_events"], now=now)
            found = await conn.fetch(
                self._db.q["claim_webhook_events"], now=now, limit=limit, lease_until=lease_until
            )
        found.sort(key=lambda r: (r[7], r[0]))  # due order, as they were picked
        return [rows.event(r) for r in found]

    async def settle_webhook_event(
        self, event_id: str, *, sent: bool, next_attempt_at: datetime | None, error: str | None
    ) -> None:
        await self._db.execute(
            "settle_webhook_event",
            id=event_id,
            sent=sent,
            next_attempt_at=next_attempt_at,
            error=error,
        )

    async def next_webhook_event_at(self) -> datetime | None:
        at: datetime | None = await self._db.fetchval("next_webhook_event_at")
        return at
