"""Builders for domain objects in tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from herald.domain import (
    Channel,
    Content,
    Media,
    MediaKind,
    NewPost,
    Platform,
    Post,
    new_id,
    utcnow,
)

_PLATFORM_MEDIA = {
    Platform.INSTAGRAM: (Media("https://cdn.example/p.jpg", MediaKind.IMAGE),),
    Platform.YOUTUBE: (Media("https://cdn.example/v.mp4", MediaKind.VIDEO),),
}


def channel(platform: Platform = Platform.FACEBOOK, **kw) -> Channel:
    cid = kw.pop("id", new_id("ch"))
    return Channel(
        id=cid,
        platform=platform,
        external_id=kw.pop("external_id", cid),
        name=kw.pop("name", f"{platform.value} {cid}"),
        timezone=kw.pop("timezone", "Europe/Paris"),
        credentials_ref=kw.pop("credentials_ref", "env:TOKEN"),
        **kw,
    )


def new_post(
    channels: list[Channel], *, due_at: datetime | None = None, text: str | None = None
) -> NewPost:
    post_id = new_id("post")
    platforms = {c.platform for c in channels}
    media = next((_PLATFORM_MEDIA[p] for p in platforms if p in _PLATFORM_MEDIA), ())
    content = Content(text=text or f"hello from {post_id}", media=media, title="A title")
    return NewPost.at(
        Post(id=post_id, content=content),
        [(new_id("dlv"), c.id) for c in channels],
        due_at or utcnow() - timedelta(seconds=1),
    )
