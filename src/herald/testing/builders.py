"""Domain objects with sensible defaults, for tests that care about one or two fields."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from herald.domain import Channel, Content, Media, MediaKind, NewPost, Platform, Post, new_id
from herald.testing.virtual_time import running_clock

__all__ = ["channel", "new_post"]

# Instagram and YouTube refuse a post without media: give them some.
_PLATFORM_MEDIA = {
    Platform.INSTAGRAM: (Media("https://cdn.example/p.jpg", MediaKind.IMAGE),),
    Platform.YOUTUBE: (Media("https://cdn.example/v.mp4", MediaKind.VIDEO),),
}


def channel(platform: Platform = Platform.FACEBOOK, **fields: Any) -> Channel:
    """A channel on ``platform``; any :class:`~herald.domain.Channel` field can be given."""
    cid = fields.pop("id", new_id("ch"))
    return Channel(
        id=cid,
        platform=platform,
        external_id=fields.pop("external_id", cid),
        name=fields.pop("name", f"{platform.value} {cid}"),
        timezone=fields.pop("timezone", "Europe/Paris"),
        credentials_ref=fields.pop("credentials_ref", "env:TOKEN"),
        **fields,
    )


def new_post(
    channels: Sequence[Channel], *, due_at: datetime | None = None, text: str | None = None
) -> NewPost:
    """A post on ``channels`` with text unique to it, due at ``due_at`` (default: a second
    ago, by the running loop's clock)."""
    post_id = new_id("post")
    platforms = {c.platform for c in channels}
    media = next((_PLATFORM_MEDIA[p] for p in platforms if p in _PLATFORM_MEDIA), ())
    content = Content(text=text or f"hello from {post_id}", media=media, title="A title")
    return NewPost.at(
        Post(id=post_id, content=content),
        [(new_id("dlv"), c.id) for c in channels],
        due_at or running_clock().now() - timedelta(seconds=1),
    )
