"""The part of the PostgreSQL store's catalogue and webhook outbox that its SQL does its own
way (row locks, ``SKIP LOCKED``, arrays), the rest being
:class:`~herald.stores.sql_common.SQLCommon`'s, and the pool that runs SQLCommon's queries.
Mixed into :class:`herald.stores.postgres.PostgresStore`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Unpack

from herald.constants import OUTBOX_LOCK_PREFIX, PLATFORM_EVENT_LOCK_PREFIX
from herald.domain import Platform, Post, PostingSlot, WebhookEvent, WebhookHealth
from herald.errors import NotFound
from herald.stores.contract import (
    PostFilters,
    PostQuery,
    first_id_of_day,
    new_claim_token,
    start_of_day,
)
from herald.stores.postgres_conn import Database, Record, Unchanged
from herald.stores.rows import POSTGRES as decode
from herald.stores.sql_common import DUPLICATE, SQLCommon
from herald.types import KeyClaimed, KeyStart

__all__ = ["PostgresCatalog"]


class PostgresCatalog(SQLCommon):
    _decode = decode
    _db: Database

    # -- channels -------------------------------------------------------------------------
    async def delete_channel(self, channel_id: str, at: datetime) -> int:
        async with self._db.transaction(single=True) as conn:
            row = await conn.fetchrow(self._db.q["delete_channel"], id=channel_id, at=at)
            if row is None:
                raise NotFound("channel", channel_id)
        cancelled: int = row["cancelled"]
        return cancelled

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

    # -- posts ----------------------------------------------------------------------------
    async def list_posts(self, workspace_id: str, **filters: Unpack[PostFilters]) -> list[Post]:
        query = PostQuery(workspace_id, **filters)
        found = await self._db.fetch(
            "list_posts",
            workspace_id=workspace_id,
            after_at=None if query.after is None else query.after[0],
            after_id=None if query.after is None else query.after[1],
            filtered=query.filtered,
            limit=query.limit,
            state=None if query.state is None else query.state.value,
            channel_id=query.channel_id,
            due_from=query.due_from,
            due_to=query.due_to,
            with_held=query.with_held,
        )
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
        async with self._db.transaction(marks=False) as conn:
            # Of requests claiming at once, the unique key lets one insert; the others wait for
            # it, find its row and lock it (ON CONFLICT DO UPDATE locks the row even when its
            # WHERE refuses the update): the read below sees the row as it stays until COMMIT.
            claimed = await conn.fetchrow(
                self._db.q["begin_idempotent"],
                workspace_id=workspace_id,
                key=key,
                fingerprint=fingerprint,
                token=token,
                now=now,
                locked_until=locked_until,
                expires_at=expires_at,
            )
            if claimed is not None:
                return KeyClaimed(token)
            row = await conn.fetchrow(
                self._db.q["get_idempotency_key"], workspace_id=workspace_id, key=key
            )
        return self._judged(row, fingerprint, now)

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
        async with self._db.transaction() as conn:
            await conn.execute(self._db.q["lock_outbox_claims"], key=self._outbox_lock)
            # Events whose sender died go back to pending first, then are claimed with the rest.
            await conn.execute(self._db.q["recover_webhook_events"], now=now)
            found = await conn.fetch(
                self._db.q["claim_webhook_events"],
                now=now,
                limit=limit,
                lease_until=lease_until,
                per_webhook=per_webhook or limit,
                per_workspace=per_workspace or limit,
                probes=probes or limit,
            )
        found.sort(key=lambda r: (r["next_attempt_at"], r["id"]))  # due order, as picked
        return [decode.event(r) for r in found]

    @property
    def _outbox_lock(self) -> str:
        return f"{OUTBOX_LOCK_PREFIX}{self._db.schema or 'public'}"

    async def settle_webhook_event(
        self,
        event_id: str,
        *,
        sent: bool,
        next_attempt_at: datetime | None,
        error: str | None,
        at: datetime,
    ) -> WebhookHealth | None:
        row = await self._db.fetchrow(
            "settle_webhook_event",
            id=event_id,
            sent=sent,
            next_attempt_at=next_attempt_at,
            error=error,
            at=at,
        )
        return None if row is None else decode.health(row)

    async def disable_webhook(self, webhook_id: str, *, reason: str, at: datetime) -> bool:
        row = await self._db.fetchrow(
            "disable_webhook",
            id=webhook_id,
            reason=reason,
            at=at,
            now_iso=at.astimezone(UTC).isoformat(),
        )
        return row is not None and row["disabled"] > 0

    async def record_platform_event(
        self, platform: Platform, event: str, payload: Mapping[str, object], at: datetime
    ) -> int:
        key = f"{PLATFORM_EVENT_LOCK_PREFIX}{self._db.schema or 'public'}:{platform.value}:{event}"
        async with self._db.transaction() as conn:
            await conn.execute(self._db.q["lock_platform_events"], key=key)
            return await conn.execute(
                self._db.q["platform_event"],
                platform=platform.value,
                event=event,
                payload=json.dumps(dict(payload)),
                now=at,
                day=start_of_day(at),
                day_id=first_id_of_day("evt", at),
                version=str(payload.get("version")),
            )

    # -- named queries, for SQLCommon ------------------------------------------------------
    async def _execute(self, query: str, missing: NotFound | None = None, /, **values: Any) -> int:
        async with self._db.transaction(single=True) as conn:
            changed = await conn.execute(self._db.q[query], **values)
            if changed == 0:  # nothing written: a key claim's mark is not kept either
                raise missing or Unchanged
        return changed

    async def _write_keys(self, queries: Sequence[str], /, **values: Any) -> list[int]:
        async with self._db.transaction(single=len(queries) == 1, marks=False) as conn:
            return [await conn.execute(self._db.q[q], **values) for q in queries]

    async def _insert(self, query: str, /, **values: Any) -> None:
        async with self._db.transaction(DUPLICATE[query], single=True) as conn:
            await conn.execute(self._db.q[query], **values)

    async def _fetch(self, query: str, /, **values: Any) -> list[Record]:
        return await self._db.fetch(query, **values)

    async def _fetchrow(self, query: str, /, **values: Any) -> Record | None:
        return await self._db.fetchrow(query, **values)

    async def _erase(self, queries: Sequence[str], workspace_id: str) -> list[int]:
        async with self._db.transaction() as conn:
            # Lock first what others could add children to (stores/sql/postgres.sql).
            await conn.fetch(self._db.q["lock_erased_imports"], id=workspace_id)
            if await conn.fetchrow(self._db.q["lock_erased_workspace"], id=workspace_id) is None:
                raise NotFound("workspace", workspace_id)
            for rows in ("channels", "deliveries", "events", "webhooks"):
                await conn.fetch(self._db.q[f"lock_workspace_{rows}"], id=workspace_id)
            # PostgreSQL's own tables (read replicas' positions, keyed by the API keys erased
            # below; a move's holds): not in ERASED_TABLES, whose counts every store reports
            # alike (the catalog contract).
            await conn.execute(self._db.q["erase_read_positions"], id=workspace_id)
            await conn.execute(self._db.q["erase_move_holds"], id=workspace_id)
            return [await conn.execute(self._db.q[q], id=workspace_id) for q in queries]

    def _instant(self, at: datetime) -> datetime:
        return at
