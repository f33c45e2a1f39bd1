"""The in-memory store's catalogue (see :mod:`herald.stores.memory`); its webhooks and their
outbox are :mod:`herald.stores.memory_outbox`'s, its idempotency keys
:mod:`herald.stores.memory_keys`'. Each write marks a request's key claim
(:meth:`~herald.stores.memory_keys.MemoryKeys._mark_claim`) right before it changes anything."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import TypeVar, Unpack

from herald.domain import (
    DEFAULT_WORKSPACE,
    ApiKey,
    Channel,
    ChannelStatus,
    Delivery,
    Platform,
    Post,
    PostingSlot,
    Workspace,
)
from herald.errors import InvalidInput, NotFound
from herald.states import CANCELLABLE, DROPPED, DeliveryState
from herald.stores.contract import PostFilters, PostQuery, by_post
from herald.stores.memory_outbox import MemoryOutbox
from herald.stores.slot_locks import KeyedLocks

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


class MemoryCatalog(MemoryOutbox):
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
        self._init_outbox()
        self._slot_locks = KeyedLocks()
        self._init_keys()

    # -- workspaces and keys ----------------------------------------------------------------
    async def add_workspace(self, workspace: Workspace) -> None:
        if workspace.id in self._workspaces:
            raise InvalidInput("a workspace with this id exists")
        self._mark_claim()
        self._workspaces[workspace.id] = workspace

    async def get_workspace(self, workspace_id: str) -> Workspace:
        return lookup(self._workspaces, workspace_id, "workspace")

    async def list_workspaces(self) -> list[Workspace]:
        return [self._workspaces[k] for k in sorted(self._workspaces)]

    async def add_api_key(self, key: ApiKey, secret_hash: str) -> None:
        if any(k.prefix == key.prefix or k.id == key.id for k, _ in self._keys.values()):
            raise InvalidInput("an API key with this prefix exists")
        self._mark_claim()
        self._keys[key.id] = (key, secret_hash)

    async def api_key_by_prefix(self, prefix: str) -> tuple[ApiKey, str] | None:
        return next((entry for entry in self._keys.values() if entry[0].prefix == prefix), None)

    async def list_api_keys(self, workspace_id: str) -> list[ApiKey]:
        keys = [k for k, _ in self._keys.values() if k.workspace_id == workspace_id]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def revoke_api_key(self, key_id: str, at: datetime) -> None:
        key, digest = lookup(self._keys, key_id, "api key")
        self._mark_claim()
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
        self._mark_claim()
        self._channels[channel.id] = replace(
            old,
            name=channel.name,
            timezone=channel.timezone,
            credentials_ref=channel.credentials_ref,
        )

    async def count_channels_needing_reauth(self) -> dict[Platform, int]:
        found: dict[Platform, int] = {}
        for c in self._channels.values():
            if c.status is ChannelStatus.NEEDS_REAUTH and c.deleted_at is None:
                found[c.platform] = found.get(c.platform, 0) + 1
        return found

    async def delete_channel(self, channel_id: str, at: datetime) -> int:
        old = self._channel(channel_id)
        if old.deleted_at is not None:
            raise NotFound("channel", channel_id)
        self._mark_claim()
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
        self._mark_claim()
        self._secrets[channel_id] = ciphertext

    async def get_channel_secret(self, channel_id: str) -> bytes | None:
        self._channel(channel_id)
        return self._secrets.get(channel_id)

    async def set_schedule(self, channel_id: str, slots: Sequence[PostingSlot]) -> None:
        self._channel(channel_id)
        self._mark_claim()
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

    async def lagging_reads(self, read: Callable[[], Awaitable[T]]) -> T:
        return await read()  # one copy of the data: nothing lags

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
        held = set() if query.with_held else {d.post_id for d in deliveries if d.held}
        posts = sorted(
            (
                p
                for p in self._posts.values()
                if p.workspace_id == workspace_id
                and (wanted is None or p.id in wanted)
                and p.id not in held
                and (query.after is None or (p.created_at, p.id) > query.after)
            ),
            key=lambda p: (p.created_at, p.id),
        )
        return posts[: query.limit]

    async def deliveries_of(self, post_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        return by_post(post_ids, self._deliveries.values())
