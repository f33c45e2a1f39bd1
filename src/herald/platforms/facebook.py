"""Facebook Pages connector (Graph API): text and link posts, one photo, several photos.

A single photo is one ``/photos`` call that publishes; several photos are uploaded
unpublished, then attached to one ``/feed`` post, so only the last call can create a post and
only its failure has an unknown outcome. Video is not supported yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from herald.config import FacebookSettings
from herald.domain import Content, MediaKind, Platform, utcnow
from herald.errors import ContentInvalid, OutcomeUnknown, PlatformError, TransientPlatformError
from herald.platforms import graph
from herald.platforms.content import ensure_valid, with_link
from herald.platforms.graph import GraphApi, merge_usage
from herald.platforms.graph_listing import find_post
from herald.platforms.http import HttpClient
from herald.platforms.lookup import require_text
from herald.types import PlatformUsage, Published, PublishRequest

__all__ = ["FacebookConnector", "classify", "message_of", "validate"]

_PLATFORM = Platform.FACEBOOK.value


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes | Mapping[str, Any] | None,
    *,
    now: datetime,
    pause_s: float,
    creates_post: bool = False,
    channel_id: str | None = None,
) -> PlatformError:
    """One Graph error answer -> one Herald error (the Facebook table of docs/platforms.md)."""
    return graph.classify(
        status,
        headers,
        body,
        now=now,
        pause_s=pause_s,
        creates_post=creates_post,
        channel_id=channel_id,
        platform=_PLATFORM,
    )


def validate(content: Content) -> None:
    if any(m.kind is MediaKind.VIDEO for m in content.media):
        raise ContentInvalid("Facebook video posts are not supported yet", field="media")
    if not (content.text.strip() or content.link or content.media):
        raise ContentInvalid("a Facebook post needs text, a link or images", field="text")


def message_of(content: Content) -> str:
    """The post's text as sent: a feed post carries the link itself, a photo post cannot."""
    return with_link(content.text, content.link) if content.media else content.text


class FacebookConnector:
    platform = Platform.FACEBOOK

    def __init__(
        self,
        settings: FacebookSettings,
        *,
        throttle_pause_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._http = HttpClient(_PLATFORM, settings)
        self._graph = GraphApi(
            self._http,
            settings.base_url,
            pause_s=throttle_pause_s,
            classifier=graph.classify,
            clock=clock,
        )

    def usage_of(self, content: Content) -> Mapping[str, int]:
        photos = len(content.media)
        return {"calls": photos + 1 if photos > 1 else 1}

    def lookup_usage(self) -> Mapping[str, int]:
        # Reserved before the look-up: its first page. Each further page of 100 posts in
        # the window is one more call, known only while paging (docs/platforms.md).
        return {"calls": 1}

    def validate(self, content: Content) -> None:
        validate(content)

    async def publish(self, request: PublishRequest) -> Published:
        ensure_valid(validate, request.content, _PLATFORM)
        photos = len(request.content.media)
        if photos == 0:
            return await self._feed(request)
        if photos == 1:
            return await self._photo(request)
        return await self._album(request)

    async def _feed(self, request: PublishRequest) -> Published:
        body: dict[str, Any] = {"message": request.content.text}
        if request.content.link:
            body["link"] = request.content.link
        return await self._post(request, "feed", body, None)

    async def _photo(self, request: PublishRequest) -> Published:
        body = {
            "url": request.content.media[0].url,
            "caption": message_of(request.content),
            "published": True,
        }
        return await self._post(request, "photos", body, None)

    async def _album(self, request: PublishRequest) -> Published:
        page = request.channel.external_id
        usage: PlatformUsage | None = None
        attached: list[dict[str, str]] = []
        for item in request.content.media:
            answer = await self._graph.call(
                "POST",
                f"{page}/photos",
                request.credentials,
                channel_id=page,
                json={"url": item.url, "published": False},
            )
            usage = merge_usage(usage, answer.usage)
            photo_id = answer.data.get("id")
            if not isinstance(photo_id, str | int):
                raise TransientPlatformError(
                    "facebook: photo upload answered without an id", platform=_PLATFORM
                )
            attached.append({"media_fbid": str(photo_id)})
        body = {"message": message_of(request.content), "attached_media": attached}
        return await self._post(request, "feed", body, usage)

    async def _post(
        self,
        request: PublishRequest,
        edge: str,
        body: Mapping[str, Any],
        usage: PlatformUsage | None,
    ) -> Published:
        page = request.channel.external_id
        answer = await self._graph.call(
            "POST",
            f"{page}/{edge}",
            request.credentials,
            channel_id=page,
            json=body,
            creates_post=True,
        )
        post_id = answer.data.get("post_id") or answer.data.get("id")
        if not isinstance(post_id, str | int) or not str(post_id):
            raise OutcomeUnknown("facebook: publish answered without a post id", platform=_PLATFORM)
        return Published(
            str(post_id),
            url=f"https://www.facebook.com/{post_id}",
            usage=merge_usage(usage, answer.usage),
        )

    async def find(self, request: PublishRequest) -> Published | None:
        text = message_of(request.content)
        require_text(text, _PLATFORM)
        found, usage = await find_post(
            self._graph,
            request,
            "published_posts",
            text,
            text_field="message",
            time_field="created_time",
        )
        if found is None:
            return None
        return Published(found, url=f"https://www.facebook.com/{found}", usage=usage)

    async def aclose(self) -> None:
        await self._http.aclose()
