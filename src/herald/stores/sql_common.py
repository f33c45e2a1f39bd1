"""What the SQLite and PostgreSQL stores do alike, written once: the named queries of
``stores/sql/common.sql`` (reads, and the catalogue's one-statement writes), their rows decoded
by :mod:`herald.stores.rows`.

A store brings what differs: how it runs a named query (:meth:`SQLCommon._fetch`,
:meth:`SQLCommon._fetchrow`, :meth:`SQLCommon._execute`, :meth:`SQLCommon._insert`,
:meth:`SQLCommon._write_keys`), its dialect's :class:`~herald.stores.rows.Decoder`, and how it
passes an instant as a parameter (:meth:`SQLCommon._instant`).

Every write runs in a transaction that, while an API request holds an idempotency key
(:mod:`herald.keyclaim`), first marks the key committed (``mark_idempotent``), except the
statements on the keys themselves (:meth:`SQLCommon._write_keys`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from herald.domain import (
    ApiKey,
    Attempt,
    Channel,
    Delivery,
    Platform,
    Post,
    PostingSlot,
    SentRecord,
    Webhook,
    WebhookEventRecord,
    WebhookEventState,
    Workspace,
    utcnow,
)
from herald.errors import NotFound, StoreError
from herald.states import DeliveryState
from herald.stores.contract import judge_key
from herald.stores.rows import Decoder, Row, headers_json
from herald.types import EngineInfo, KeyStart, Recovered, StoredResponse

__all__ = ["DUPLICATE", "ERASED_TABLES", "SQLCommon"]

#: What a duplicate key means to the caller, per insert statement of :class:`SQLCommon`.
DUPLICATE = {
    "insert_workspace": "a workspace with this id exists",
    "insert_api_key": "an API key with this prefix exists",
    "insert_webhook": "a webhook with this id exists",
}


#: What :meth:`SQLCommon.erase_workspace` deletes, in order (children first): table names,
#: each erased by the named query ``erase_<table>`` (stores/sql/common.sql).
ERASED_TABLES = (
    "attempts",
    "webhook_events",
    "import_posts",
    "deliveries",
    "posting_slots",
    "posts",
    "imports",
    "webhooks",
    "channels",
    "api_keys",
    "idempotency_keys",
    "workspace",
)


class SQLCommon(ABC):
    """Part of :class:`herald.types.Store`, mixed into the SQLite and PostgreSQL stores."""

    _decode: ClassVar[Decoder]

    @abstractmethod
    async def _fetch(self, query: str, /, **values: Any) -> Sequence[Row]:
        """Every row of named query ``query``."""

    @abstractmethod
    async def _fetchrow(self, query: str, /, **values: Any) -> Row | None:
        """The first row of named query ``query``, if any."""

    @abstractmethod
    async def _execute(self, query: str, missing: NotFound | None = None, /, **values: Any) -> int:
        """Run write ``query`` in a transaction of its own; return how many rows it changed.
        If it changed none and ``missing`` is given, raise ``missing`` from inside the
        transaction: rolled back, a key claim's mark with it (nothing was written)."""

    @abstractmethod
    async def _write_keys(self, queries: Sequence[str], /, **values: Any) -> list[int]:
        """Run ``queries``, statements on the idempotency keys themselves, in one transaction
        that never marks a key claim; how many rows each changed."""

    @abstractmethod
    async def _insert(self, query: str, /, **values: Any) -> None:
        """Run insert ``query``; a duplicate key becomes ``InvalidInput(DUPLICATE[query])``."""

    @abstractmethod
    async def _erase(self, queries: Sequence[str], workspace_id: str) -> list[int]:
        """Run each of ``queries`` with ``id=workspace_id`` in one transaction, in order; how
        many rows each deleted. :class:`NotFound` (nothing erased) if the last one, the
        workspace's own row, deleted nothing."""

    @abstractmethod
    def _instant(self, at: datetime) -> Any:
        """``at`` as this store passes an instant to a query."""

    @abstractmethod
    async def _remove_engines(
        self, engine_ids: Sequence[str], now: datetime, dead_before: datetime | None
    ) -> Recovered:
        """In one transaction: remove those of ``engine_ids`` that have not beaten since
        ``dead_before`` (None: whenever) and release their claims, and lapsed leases."""

    async def _found(self, query: str, object_id: str, kind: str) -> Row:
        """The row of ``query`` for ``object_id``; :class:`NotFound` if there is none."""
        row = await self._fetchrow(query, id=object_id)
        if row is None:
            raise NotFound(kind, object_id)
        return row

    async def _change(self, query: str, kind: str, object_id: str, /, **values: Any) -> None:
        """Run update ``query`` on ``object_id``; :class:`NotFound` if it changed nothing."""
        await self._execute(query, NotFound(kind, object_id), id=object_id, **values)

    # -- channels ---------------------------------------------------------------------------
    async def get_channel(self, channel_id: str) -> Channel:
        return self._decode.channel(await self._found("get_channel", channel_id, "channel"))

    async def list_channels(self, workspace_id: str | None = None) -> list[Channel]:
        if workspace_id is None:
            found = await self._fetch("list_channels")
        else:
            found = await self._fetch("list_workspace_channels", workspace_id=workspace_id)
        return [self._decode.channel(r) for r in found]

    async def update_channel(self, channel: Channel) -> None:
        await self._change(
            "update_channel",
            "channel",
            channel.id,
            name=channel.name,
            timezone=channel.timezone,
            credentials_ref=channel.credentials_ref,
        )

    async def get_channel_secret(self, channel_id: str) -> bytes | None:
        secret = (await self._found("get_channel_secret", channel_id, "channel"))["secret"]
        return None if secret is None else bytes(secret)

    async def set_channel_secret(self, channel_id: str, ciphertext: bytes) -> None:
        await self._change("set_channel_secret", "channel", channel_id, secret=ciphertext)

    async def get_schedule(self, channel_id: str) -> list[PostingSlot]:
        return [self._decode.slot(r) for r in await self._fetch("get_schedule", id=channel_id)]

    async def busy_times(self, channel_id: str, start: datetime, end: datetime) -> set[datetime]:
        found = await self._fetch(
            "busy_times", id=channel_id, start=self._instant(start), end=self._instant(end)
        )
        return {self._decode.instant(r["due_at"]) for r in found}

    # -- posts, deliveries, attempts --------------------------------------------------------
    async def get_post(self, post_id: str) -> Post:
        return self._decode.post(await self._found("get_post", post_id, "post"))

    async def get_delivery(self, delivery_id: str) -> Delivery:
        return self._decode.delivery(await self._found("get_delivery", delivery_id, "delivery"))

    async def list_deliveries(
        self, *, state: DeliveryState | None = None, limit: int = 1000, after_id: str = ""
    ) -> list[Delivery]:
        if state is None:
            found = await self._fetch("list_deliveries", after_id=after_id, limit=limit)
        else:
            found = await self._fetch(
                "list_deliveries_in_state", state=state.value, after_id=after_id, limit=limit
            )
        return [self._decode.delivery(r) for r in found]

    async def list_attempts(self, delivery_id: str) -> list[Attempt]:
        return [self._decode.attempt(r) for r in await self._fetch("list_attempts", id=delivery_id)]

    async def count_by_state(self) -> dict[DeliveryState, int]:
        found = await self._fetch("count_by_state")
        return {DeliveryState(r["state"]): r["deliveries"] for r in found}

    async def count_webhook_backlog(self) -> int:
        return sum(int(r["events"]) for r in await self._fetch("count_webhook_backlog"))

    async def count_channels_needing_reauth(self) -> dict[Platform, int]:
        found = await self._fetch("count_channels_needing_reauth")
        return {Platform(r["platform"]): int(r["channels"]) for r in found}

    async def sent_since(self, since: datetime) -> list[SentRecord]:
        return self._decode.sent(await self._fetch("sent_since", since=self._instant(since)))

    # -- the engine registry ---------------------------------------------------------------
    async def list_engines(self) -> list[EngineInfo]:
        at = self._decode.instant
        return [
            EngineInfo(r["id"], r["host"], r["pid"], at(r["started_at"]), at(r["beat_at"]))
            for r in await self._fetch("list_engines")
        ]

    async def recover_dead_engines(self, now: datetime, *, dead_before: datetime) -> Recovered:
        # A read of a few rows first: the writing statement runs only when one has died.
        found = await self._fetch("dead_engines", dead_before=self._instant(dead_before))
        if not found:
            return Recovered()
        return await self._remove_engines([r["id"] for r in found], now, dead_before)

    async def deregister_engine(self, engine_id: str, now: datetime) -> Recovered:
        return await self._remove_engines([engine_id], now, None)

    # -- workspaces and keys ----------------------------------------------------------------
    async def add_workspace(self, workspace: Workspace) -> None:
        at = self._instant(workspace.created_at)
        await self._insert(
            "insert_workspace",
            id=workspace.id,
            name=workspace.name,
            created_at=at,
        )

    async def get_workspace(self, workspace_id: str) -> Workspace:
        row = await self._found("get_workspace", workspace_id, "workspace")
        return self._decode.workspace(row)

    async def list_workspaces(self) -> list[Workspace]:
        return [self._decode.workspace(r) for r in await self._fetch("list_workspaces")]

    async def erase_workspace(self, workspace_id: str) -> dict[str, int]:
        counts = await self._erase([f"erase_{t}" for t in ERASED_TABLES], workspace_id)
        return dict(zip(ERASED_TABLES, counts, strict=True))

    async def add_api_key(self, key: ApiKey, secret_hash: str) -> None:
        await self._insert(
            "insert_api_key",
            id=key.id,
            workspace_id=key.workspace_id,
            prefix=key.prefix,
            secret_hash=secret_hash,
            name=key.name,
            created_at=self._instant(key.created_at),
        )

    async def api_key_by_prefix(self, prefix: str) -> tuple[ApiKey, str] | None:
        row = await self._fetchrow("api_key_by_prefix", prefix=prefix)
        return None if row is None else (self._decode.api_key(row), row["secret_hash"])

    async def list_api_keys(self, workspace_id: str) -> list[ApiKey]:
        found = await self._fetch("list_api_keys", workspace_id=workspace_id)
        return [self._decode.api_key(r) for r in found]

    async def revoke_api_key(self, key_id: str, at: datetime) -> None:
        await self._change("revoke_api_key", "api key", key_id, at=self._instant(at))

    # -- webhooks ---------------------------------------------------------------------------
    async def add_webhook(self, webhook: Webhook, secret_ciphertext: bytes) -> None:
        await self._insert(
            "insert_webhook",
            url=webhook.url,
            events=json.dumps(list(webhook.events)),
            secret=secret_ciphertext,
            id=webhook.id,
            workspace_id=webhook.workspace_id,
            created_at=self._instant(webhook.created_at),
        )

    async def list_webhooks(self, workspace_id: str) -> list[Webhook]:
        found = await self._fetch("list_webhooks", workspace_id=workspace_id)
        return [self._decode.webhook(r) for r in found]

    async def get_webhook_secret(self, webhook_id: str) -> bytes:
        row = await self._found("get_webhook_secret", webhook_id, "webhook")
        return bytes(row["secret"])

    async def set_webhook_secret(self, webhook_id: str, ciphertext: bytes) -> None:
        await self._change("set_webhook_secret", "webhook", webhook_id, secret=ciphertext)

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._change("delete_webhook", "webhook", webhook_id, at=self._instant(utcnow()))

    async def enable_webhook(self, webhook_id: str) -> None:
        await self._change("enable_webhook", "webhook", webhook_id)

    async def hold_webhook(self, webhook_id: str, until: datetime) -> None:
        await self._execute("hold_webhook", id=webhook_id, until=self._instant(until))

    async def next_webhook_event_at(self) -> datetime | None:
        row = await self._fetchrow("next_webhook_event_at")
        return None if row is None else self._decode.maybe_instant(row["next_attempt_at"])

    # -- idempotency keys (the claim itself is each store's: begin_idempotent) ----------------
    def _judged(self, row: Row | None, fingerprint: str, now: datetime) -> KeyStart:
        """What a request that could not claim a key at ``now`` is told, from the key's row
        (read under the claiming statement's lock: it cannot have gone since)."""
        if row is None:
            raise StoreError("an idempotency key that could not be claimed has no row")
        return judge_key(self._decode.key_record(row), fingerprint, now)

    async def finish_idempotent(
        self, workspace_id: str, key: str, token: str, response: StoredResponse
    ) -> bool:
        (changed,) = await self._write_keys(
            ["finish_idempotent"],
            workspace_id=workspace_id,
            key=key,
            token=token,
            status=response.status,
            headers=headers_json(response),
            body=response.body,
        )
        return changed > 0

    async def release_idempotent(self, workspace_id: str, key: str, token: str) -> bool:
        freed, _ = await self._write_keys(
            ["release_idempotent", "unlock_idempotent"],
            workspace_id=workspace_id,
            key=key,
            token=token,
        )
        return freed > 0

    async def purge_idempotency(self, before: datetime, *, limit: int) -> int:
        (purged,) = await self._write_keys(
            ["purge_idempotency"], before=self._instant(before), limit=limit
        )
        return purged

    async def list_webhook_events(
        self,
        webhook_id: str,
        *,
        state: WebhookEventState | None = None,
        after_id: str = "",
        limit: int = 50,
    ) -> list[WebhookEventRecord]:
        found = await self._fetch(
            "list_webhook_events",
            webhook_id=webhook_id,
            state=None if state is None else state.value,
            after_id=after_id,
            limit=limit,
        )
        return [self._decode.event_record(r) for r in found]

    async def get_webhook_event(self, event_id: str) -> WebhookEventRecord:
        row = await self._found("get_webhook_event", event_id, "webhook event")
        return self._decode.event_record(row)

    async def replay_webhook_event(self, event_id: str, *, at: datetime) -> bool:
        if await self._execute("replay_webhook_event", id=event_id, at=self._instant(at)):
            return True
        await self._found("get_webhook_event", event_id, "webhook event")  # or NotFound
        return False
