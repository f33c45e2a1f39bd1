"""Tenancy at read time: the store does not scope reads by workspace, these functions do.

Each one answers :class:`~herald.errors.NotFound` (the same error, word for word, as for an id
that does not exist) when the object belongs to another workspace, so a caller cannot even
learn that it exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from herald.domain import Channel, Delivery, Post
from herald.errors import NotFound
from herald.types import Catalog, EngineStore

__all__ = ["owned_channel", "owned_delivery", "owned_one", "owned_post"]


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_Identified)


def owned_one(listed: Iterable[T], object_id: str, kind: str) -> T:
    """The object ``object_id`` among those the store listed for the workspace."""
    for item in listed:
        if item.id == object_id:
            return item
    raise NotFound(kind, object_id)


async def owned_channel(store: EngineStore, workspace_id: str, channel_id: str) -> Channel:
    """A live (not deleted) channel of the workspace."""
    channel = await store.get_channel(channel_id)
    if channel.workspace_id != workspace_id or channel.deleted_at is not None:
        raise NotFound("channel", channel_id)
    return channel


async def owned_post(store: Catalog, workspace_id: str, post_id: str) -> Post:
    post = await store.get_post(post_id)
    if post.workspace_id != workspace_id:
        raise NotFound("post", post_id)
    return post


async def owned_delivery(
    store: Catalog, workspace_id: str, delivery_id: str
) -> tuple[Delivery, Post]:
    """A delivery of one of the workspace's posts, with its post."""
    delivery = await store.get_delivery(delivery_id)
    post = await store.get_post(delivery.post_id)
    if post.workspace_id != workspace_id:
        raise NotFound("delivery", delivery_id)
    return delivery, post
