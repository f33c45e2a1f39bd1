"""Facebook Pages connector (Graph API): text and link posts, one photo, several photos.

A single photo is one ``/photos`` call that publishes; several photos are uploaded
unpublished, then attached to one ``/feed`` post, so only the last call can create a post and
only its failure has an unknown outcome. Video is not supported yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from herald.config import FacebookSettings
from herald.constants import GraphEdge
from herald.domain import Content, Platform
from herald.errors import OutcomeUnknown, PlatformError, TransientPlatformError
from herald.platforms import graph
from herald.platforms.answers import ErrorAnswer
from herald.platforms.graph import GraphConnector, merge_usage
from herald.platforms.graph_listing import find_post
from herald.platforms.http import exchange
from herald.platforms.rules import facebook_message
from herald.types import PlatformUsage, Published, PublishRequest

__all__ = ["FacebookConnector", "classify"]

_PLATFORM = Platform.FACEBOOK.value


def classify(answer: ErrorAnswer) -> PlatformError:
    """One Graph error answer -> one Herald error (the Facebook table of docs/platforms.md)."""
    return graph.classify(answer, platform=_PLATFORM)


class FacebookConnector(GraphConnector[FacebookSettings]):
    platform = Platform.FACEBOOK
    classify = staticmethod(classify)

    def usage_of(self, content: Content) -> Mapping[str, int]:
        photos = len(content.media)
        return {"calls": photos + 1 if photos > 1 else 1}

    def lookup_usage(self) -> Mapping[str, int]:
        # Reserved before the look-up: its first page. Each further page of 100 posts in
        # the window is one more call, known only while paging (docs/platforms.md).
        return {"calls": 1}

    @exchange
    async def publish(self, request: PublishRequest) -> Published:
        self._ensure_valid(request.content)
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
        return await self._post(request, GraphEdge.FEED, body, None)

    async def _photo(self, request: PublishRequest) -> Published:
        body = {
            "url": request.content.media[0].url,
            "caption": facebook_message(request.content),
            "published": True,
        }
        return await self._post(request, GraphEdge.PHOTOS, body, None)

    async def _album(self, request: PublishRequest) -> Published:
        page = request.channel.external_id
        usage: PlatformUsage | None = None
        attached: list[dict[str, str]] = []
        for item in request.content.media:
            answer = await self._graph.call(
                "POST",
                f"{page}/{GraphEdge.PHOTOS}",
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
        body = {"message": facebook_message(request.content), "attached_media": attached}
        return await self._post(request, GraphEdge.FEED, body, usage)

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

    @exchange
    async def find(self, request: PublishRequest) -> Published | None:
        text = facebook_message(request.content)
        found, usage = await find_post(self._graph, request, GraphEdge.PUBLISHED_POSTS, text)
        if found is None:
            return None
        return Published(found, url=f"https://www.facebook.com/{found}", usage=usage)
