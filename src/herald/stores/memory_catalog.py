"""The in-memory store's catalogue and webhook outbox (see :mod:`herald.stores.memory`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar, Unpack

from herald.domain import (
    DEFAULT_WORKSPACE,
    ApiKey,
    Channel,
    ChannelStatus,
    Delivery,
    Post,
    PostingSlot,
    Webhook,
    WebhookEvent,
    Workspace,
    new_id,
)
from herald.errors import InvalidInput, NotFound
from herald.states import CANCELLABLE, DROPPED, DeliveryState
from herald.stores.contract import (
    KeyRecord,
    PostFilters,
    PostQuery,
    by_post,
    judge_key,
    key_claimable,
    new_claim_token,
)
from herald.stores.slot_locks import KeyedLocks
from herald.types import KeyClaimed, KeyStart, StoredResponse

__all__ = ["Claim", "MemoryCatalog", "lookup"]

S = DeliveryState
T = TypeVar("T")
#: A claim on a delivery: its token, its lease, and the engine that holds it.
Claim = tuple[str, datetime, str | None]


def lookup(objects: Mapping[str, T], object_id: str, kind: str) -> T:
    """``objects[object_id]``; :class:`~herald.errors.NotFound` if there is no such object."""
    try:
        return objects[object_id]
    except KeyError:
        raise NotFound(kind, object_id) from None


class _Outgoing:
    __slots__ = ("attempts", "event", "lease_until", "next_attempt_at", "state")

    def __init__(self, event: WebhookEvent, at: datetime) -> None:
        self.event = event
        self.state = "pending"
        self.attempts = 0
        self.next_attempt_at: datetime | None = at
        self.lease_until: datetime | None = None


class MemoryCatalog:
    _channels: dict[str, Channel]
    _posts: dict[str, Post]
    _deliveries: dict[str, Delivery]
    _claims: dict[str, Claim]

    def _init_catalog(self) -> None:
        # Seeded like the SQL stores' first migration: channels and posts made without a
        # workspace belong to it, and every store lists it.
        default = Workspace(DEFAULT_WORKSPACE, "Default")
        self._workspaces: dict[str, Workspace] = {default.id: default}
        self._keys: dict[str, tuple[ApiKey, str]] = {}
        self._secrets: dict[str, bytes] = {}
        self._slots: dict[str, list[PostingSlot]] = {}
        self._webhooks: dict[str, tuple[Webhook, bytes]] = {}
        self._outbox: dict[str, _Outgoing] = {}
        self._slot_locks = KeyedLocks()
        self._idempotency: dict[tuple[str, str], KeyRecord] = {}

    # -- workspaces and keys ----------------------------------------------------------------
    async def add_workspace(self, workspace: Workspace) -> None:
        if workspace.id in self._workspaces:
            raise InvalidInput("a workspace with this id exists")
        self._workspaces[workspace.id] = workspace

    async def get_workspace(self, workspace_id: str) -> Workspace:
        return lookup(self._workspaces, workspace_id, "workspace")

    async def list_workspaces(self) -> list[Workspace]:
        return [self._workspaces[k] for k in sorted(self._workspaces)]

    async def add_api_key(self, key: ApiKey, secret_hash: str) -> None:
        if any(k.prefix == key.prefix or k.id == key.id for k, _ in self._keys.values()):
            raise InvalidInput("an API key with this prefix exists")
        self._keys[key.id] = (key, secret_hash)

    async def api_key_by_prefix(self, prefix: str) -> tuple[ApiKey, str] | None:
        return next((entry for entry in self._keys.values() if entry[0].prefix == prefix), None)

    async def list_api_keys(self, workspace_id: str) -> list[ApiKey]:
        keys = [k for k, _ in self._keys.values() if k.workspace_id == workspace_id]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def revoke_api_key(self, key_id: str, at: datetime) -> None:
        key, digest = lookup(self._keys, key_id, "api key")
        self._keys[key_id] = (replace(key, revoked_at=key.revoked_at or at), digest)

    # -- channels -------------------------------------------------------------------------
    async def list_channels(self, workspace_id: str | None = None) -> list[Channel]:
        return sorted(
            (
                c
                for c in self._channels.values()
                if c.deleted_at is None and workspace_id in (None, c.workspace_id)
            ),
            key=lambda c: c.id,
        )

    def _channel(self, channel_id: str) -> Channel:
        return lookup(self._channels, channel_id, "channel")

    async def update_channel(self, channel: Channel) -> None:
        old = self._channel(channel.id)
        self._channels[channel.id] = replace(
            old,
            name=channel.name,
            timezone=channel.timezone,
            credentials_ref=channel.credentials_ref,
        )

    async def delete_channel(self, channel_id: str, at: datetime) -> int:
        old = self._channel(channel_id)
        if old.deleted_at is not None:
            raise NotFound("channel", channel_id)
        self._channels[channel_id] = replace(old, deleted_at=at, status=ChannelStatus.DISABLED)
        cancelled = 0
        for d in list(self._deliveries.values()):
            if d.channel_id == channel_id and d.state in CANCELLABLE:
                self._deliveries[d.id] = replace(
                    d,
                    state=S.CANCELLED,
                    next_attempt_at=None,
                    updated_at=at,
                    last_error="the channel was deleted",
                )
                self._claims.pop(d.id, None)
                cancelled += 1
        return cancelled

    async def set_channel_secret(self, channel_id: str, ciphertext: bytes) -> None:
        self._channel(channel_id)
        self._secrets[channel_id] = ciphertext

    async def get_channel_secret(self, channel_id: str) -> bytes | None:
        self._channel(channel_id)
        return self._secrets.get(channel_id)

    async def set_schedule(self, channel_id: str, slots: Sequence[PostingSlot]) -> None:
        self._channel(channel_id)
        self._slots[channel_id] = sorted(set(slots), key=lambda s: (s.weekday, s.time))

    async def get_schedule(self, channel_id: str) -> list[PostingSlot]:
        return list(self._slots.get(channel_id, ()))

    async def busy_times(self, channel_id: str, start: datetime, end: datetime) -> set[datetime]:
        return {
            d.due_at
            for d in self._deliveries.values()
            if d.channel_id == channel_id and start <= d.due_at < end and d.state not in DROPPED
        }

    @asynccontextmanager
    async def slot_lock(self, channel_ids: Sequence[str]) -> AsyncIterator[None]:
        async with self._slot_locks.hold(channel_ids):
            yield

    # -- posts ----------------------------------------------------------------------------
    async def list_posts(self, workspace_id: str, **filters: Unpack[PostFilters]) -> list[Post]:
        query = PostQuery(workspace_id, **filters)

        def matches(d: Delivery) -> bool:
            return (
                (query.state is None or d.state is query.state)
                and (query.channel_id is None or d.channel_id == query.channel_id)
                and (query.due_from is None or d.due_at >= query.due_from)
                and (query.due_to is None or d.due_at < query.due_to)
            )

        deliveries = self._deliveries.values()
        wanted = {d.post_id for d in deliveries if matches(d)} if query.filtered else None
        posts = sorted(
            (
                p
                for p in self._posts.values()
                if p.workspace_id == workspace_id
                and (wanted is None or p.id in wanted)
                and (query.after is None or (p.created_at, p.id) > query.after)
            ),
            key=lambda p: (p.created_at, p.id),
        )
        return posts[: query.limit]

    async def deliveries_of(self, post_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        return by_post(post_ids, self._deliveries.values())

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
        # No await between the read and the write: one event loop, so the claim is atomic.
        record = self._idempotency.get((workspace_id, key))
        if record is not None and not key_claimable(record, fingerprint, now):
            return judge_key(record, fingerprint)
        token = new_claim_token()
        self._idempotency[workspace_id, key] = KeyRecord(
            fingerprint, token, locked_until, expires_at
        )
        return KeyClaimed(token)

    def _claimed(self, workspace_id: str, key: str, token: str) -> KeyRecord | None:
        record = self._idempotency.get((workspace_id, key))
        if record is None or record.token != token or record.response is not None:
            return None
        return record

    async def finish_idempotent(
        self, workspace_id: str, key: str, token: str, response: StoredResponse
    ) -> bool:
        record = self._claimed(workspace_id, key, token)
        if record is None:
            return False
        self._idempotency[workspace_id, key] = replace(record, response=response)
        return True

    async def release_idempotent(self, workspace_id: str, key: str, token: str) -> bool:
        if self._claimed(workspace_id, key, token) is None:
            return False
        del self._idempotency[workspace_id, key]
        return True

    async def purge_idempotency(self, before: datetime, *, limit: int) -> int:
        expired = [k for k, r in self._idempotency.items() if r.expires_at <= before][:limit]
        for k in expired:
            del self._idempotency[k]
        return len(expired)

    # -- webhooks and their outbox --------------------------------------------------------
    async def add_webhook(self, webhook: Webhook, secret_ciphertext: bytes) -> None:
        if webhook.id in self._webhooks:
            raise InvalidInput("a webhook with this id exists")
        self._webhooks[webhook.id] = (webhook, secret_ciphertext)

    async def list_webhooks(self, workspace_id: str) -> list[Webhook]:
        hooks = [w for w, _ in self._webhooks.values() if w.workspace_id == workspace_id]
        return sorted(hooks, key=lambda w: (w.created_at, w.id))

    async def get_webhook_secret(self, webhook_id: str) -> bytes:
        return lookup(self._webhooks, webhook_id, "webhook")[1]

    async def set_webhook_secret(self, webhook_id: str, ciphertext: bytes) -> None:
        webhook, _ = lookup(self._webhooks, webhook_id, "webhook")
        self._webhooks[webhook_id] = (webhook, ciphertext)

    async def delete_webhook(self, webhook_id: str) -> None:
        if self._webhooks.pop(webhook_id, None) is None:
            raise NotFound("webhook", webhook_id)

    def _emit(self, workspace_id: str, event: str, payload: dict[str, Any], at: datetime) -> None:
        for webhook, _ in self._webhooks.values():
            if webhook.workspace_id == workspace_id and event in webhook.events:
                event_id = new_id("evt")
                record = WebhookEvent(event_id, webhook.id, workspace_id, event, payload, 0, at)
                self._outbox[event_id] = _Outgoing(record, at)

    def _emit_delivery(self, delivery: Delivery, event: str, at: datetime) -> None:
        payload = {
            "event": event,
            "delivery_id": delivery.id,
            "post_id": delivery.post_id,
            "channel_id": delivery.channel_id,
            "platform": delivery.platform.value,
            "state": delivery.state.value,
            "external_id": delivery.external_id,
            "error": delivery.last_error,
            "occurred_at": at.astimezone(UTC).isoformat(),
        }
        self._emit(self._posts[delivery.post_id].workspace_id, event, payload, at)

    def _emit_channel(self, channel: Channel, event: str, at: datetime) -> None:
        payload = {
            "event": event,
            "channel_id": channel.id,
            "platform": channel.platform.value,
            "status": channel.status.value,
            "occurred_at": at.astimezone(UTC).isoformat(),
        }
        self._emit(channel.workspace_id, event, payload, at)

    async def claim_webhook_events(
        self, *, now: datetime, limit: int, lease_until: datetime
    ) -> list[WebhookEvent]:
        for out in self._outbox.values():
            if out.state == "sending" and out.lease_until is not None and out.lease_until < now:
                out.state, out.lease_until, out.next_attempt_at = "pending", None, now
        due = sorted(
            (
                o
                for o in self._outbox.values()
                if o.state == "pending"
                and o.next_attempt_at is not None
                and o.next_attempt_at <= now
            ),
            key=lambda o: o.next_attempt_at or now,
        )[:limit]
        for out in due:
            out.state, out.lease_until, out.attempts = "sending", lease_until, out.attempts + 1
        return [replace(o.event, attempts=o.attempts) for o in due]

    async def settle_webhook_event(
        self, event_id: str, *, sent: bool, next_attempt_at: datetime | None, error: str | None
    ) -> None:
        out = self._outbox.get(event_id)
        if out is None or out.state != "sending":
            return
        if sent:
            out.state = "sent"
        else:
            out.state = "pending" if next_attempt_at is not None else "failed"
        out.next_attempt_at, out.lease_until = next_attempt_at, None

    async def next_webhook_event_at(self) -> datetime | None:
        times = [
            o.next_attempt_at
            for o in self._outbox.values()
            if o.state == "pending" and o.next_attempt_at is not None
        ]
        return min(times, default=None)
