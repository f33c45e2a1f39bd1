"""Instagram connector (Graph API content publishing): container, wait, ``media_publish``.

One attempt creates the container(s), polls the one to publish from
``instagram.poll_initial_s``, doubling up to ``poll_max_s``, for at most ``poll_timeout_s``,
then calls ``media_publish``. Only that last call can create a post, so only its failure has an
unknown outcome; a container created but never published expires on its own after 24 h.
"Media not ready" (9007 / 2207027) on ``media_publish`` sends the attempt back to polling and
publishing again, within the same deadline.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

from herald.config import InstagramSettings
from herald.constants import ContainerStatus, GraphEdge, InstagramCode, InstagramSubcode
from herald.domain import Content, Media, MediaKind, Platform
from herald.errors import (
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    TransientPlatformError,
)
from herald.platforms import graph
from herald.platforms.answers import ErrorAnswer
from herald.platforms.graph import GraphApi, GraphConnector, GraphError, merge_usage
from herald.platforms.graph_listing import find_post
from herald.platforms.http import exchange
from herald.platforms.rules import instagram_caption
from herald.types import PlatformUsage, Published, PublishRequest

__all__ = ["InstagramConnector", "MediaNotReady", "classify", "container_state"]

_PLATFORM = Platform.INSTAGRAM.value
_IG_SUBCODE = re.compile(r"\b(22\d{5})\b")

#: -1: an Instagram server error; 2207001, 2207003, 2207032: try again.
TRANSIENT_CODES = frozenset({-1, InstagramCode.MEDIA_TIMEOUT})
TRANSIENT_SUBCODES = frozenset({2207001, 2207003, 2207032})
#: Code 4 with this subcode is a spam refusal, not Graph's app throttle.
SPAM = (4, 2207051)
#: 36000 / 2207004: the image is too large; 2207057: a bad video thumbnail offset.
BAD_MEDIA_CODES = frozenset({36000, InstagramCode.MEDIA_DOWNLOAD_FAILED})
BAD_MEDIA_SUBCODES = frozenset({2207004, 2207057, InstagramSubcode.MEDIA_DOWNLOAD_FAILED})


class MediaNotReady(TransientPlatformError):
    """``media_publish`` came too early (9007 / 2207027): poll again, then publish again."""


def _instagram_code(err: GraphError, answer: ErrorAnswer) -> PlatformError | None:
    code, sub, label = err.code, err.subcode, err.label
    message = f"{_PLATFORM}: {err.message or 'error'}"
    kw: dict[str, Any] = {"platform": _PLATFORM, "code": label, "status": answer.status}
    if code == InstagramCode.PUBLISH_LIMIT:
        return graph.throttle(answer, message, scope="channel", **kw)
    if code == InstagramCode.NOT_READY or sub == InstagramSubcode.NOT_READY:
        return MediaNotReady(message, **kw)
    if code in TRANSIENT_CODES or sub in TRANSIENT_SUBCODES:
        return TransientPlatformError(message, **kw)
    if (code, sub) == SPAM or code in BAD_MEDIA_CODES or sub in BAD_MEDIA_SUBCODES:
        return ContentRejected(message, **kw)
    return None


def classify(answer: ErrorAnswer) -> PlatformError:
    """The Instagram table of docs/platforms.md; codes it does not name go as Facebook's."""
    err = graph.parse_error(answer.body)
    if err is not None and err.code is not None:
        specific = _instagram_code(err, answer)
        if specific is not None:
            return graph.unknown_if_sent(specific, creates_post=answer.creates_post)
    return graph.classify(answer, platform=_PLATFORM)


def container_state(data: Mapping[str, Any]) -> str | None:
    """``"FINISHED"``/``"IN_PROGRESS"``; raise for a container that will never publish."""
    code = str(data.get("status_code") or "")
    if code == ContainerStatus.ERROR:
        found = _IG_SUBCODE.search(str(data.get("status") or ""))
        detail = f"{_PLATFORM}: media container failed: {str(data.get('status') or '')[:200]}"
        if found is not None and int(found.group(1)) in TRANSIENT_SUBCODES:
            raise TransientPlatformError(detail, platform=_PLATFORM, code=found.group(1))
        raise ContentRejected(detail, platform=_PLATFORM, code=found.group(1) if found else None)
    if code == ContainerStatus.EXPIRED:
        raise ContentRejected(f"{_PLATFORM}: media container expired", platform=_PLATFORM)
    if code == ContainerStatus.PUBLISHED:
        # Only this attempt's media_publish can have published it, and its answer was lost.
        raise OutcomeUnknown(f"{_PLATFORM}: container published, id unknown", platform=_PLATFORM)
    return code or None


def _item_body(media: Media) -> dict[str, Any]:
    if media.kind is MediaKind.VIDEO:
        return {"is_carousel_item": True, "media_type": "VIDEO", "video_url": media.url}
    return {"is_carousel_item": True, "image_url": media.url}


def _single_body(media: Media, caption: str) -> dict[str, Any]:
    if media.kind is MediaKind.VIDEO:
        return {"media_type": "REELS", "video_url": media.url, "caption": caption}
    return {"image_url": media.url, "caption": caption}


class InstagramConnector(GraphConnector[InstagramSettings]):
    platform = Platform.INSTAGRAM
    classify = staticmethod(classify)

    def usage_of(self, content: Content) -> Mapping[str, int]:
        items = len(content.media)
        return {"publishes": 1, "containers": items + 1 if items > 1 else 1}

    def lookup_usage(self) -> Mapping[str, int]:
        return {}

    @exchange
    async def publish(self, request: PublishRequest) -> Published:
        self._ensure_valid(request.content)
        calls = _Calls(self._graph, request)
        container = await self._container(calls, request.content)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.poll_timeout_s
        interval = self._settings.poll_initial_s
        while True:
            interval = await self._wait_finished(calls, container, deadline, interval)
            try:
                answer = await calls.call(
                    "POST",
                    GraphEdge.MEDIA_PUBLISH,
                    json={"creation_id": container},
                    creates_post=True,
                )
            except MediaNotReady:
                if loop.time() >= deadline:
                    raise
                continue
            media_id = answer.get("id")
            if not isinstance(media_id, str | int) or not str(media_id):
                raise OutcomeUnknown(
                    f"{_PLATFORM}: media_publish answered without an id", platform=_PLATFORM
                )
            return Published(str(media_id), usage=calls.usage)

    async def _container(self, calls: _Calls, content: Content) -> str:
        caption = instagram_caption(content)
        if len(content.media) == 1:
            return await calls.create(_single_body(content.media[0], caption))
        children = [await calls.create(_item_body(m)) for m in content.media]
        return await calls.create(
            {"media_type": "CAROUSEL", "children": ",".join(children), "caption": caption}
        )

    async def _wait_finished(
        self, calls: _Calls, container: str, deadline: float, interval: float
    ) -> float:
        """Poll until the container is FINISHED; return the next interval to use.

        The first look is immediate (an image is often ready by then); later ones back off.
        """
        loop = asyncio.get_running_loop()
        while True:
            data = await calls.call(
                "GET", None, path=container, params={"fields": "status_code,status"}
            )
            if container_state(data) == ContainerStatus.FINISHED:
                return interval
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TransientPlatformError(
                    f"{_PLATFORM}: media container not ready after "
                    f"{self._settings.poll_timeout_s:g} s",
                    platform=_PLATFORM,
                )
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 2, self._settings.poll_max_s)

    @exchange
    async def find(self, request: PublishRequest) -> Published | None:
        text = instagram_caption(request.content)
        found, usage = await find_post(self._graph, request, GraphEdge.MEDIA, text)
        return None if found is None else Published(found, usage=usage)


class _Calls:
    """The Graph calls of one publish or look-up, for one account; keeps the top usage seen."""

    def __init__(self, api: GraphApi, request: PublishRequest) -> None:
        self._api = api
        self._request = request
        self.user = request.channel.external_id
        self.usage: PlatformUsage | None = None

    async def call(
        self,
        method: str,
        edge: str | None,
        *,
        path: str | None = None,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        creates_post: bool = False,
    ) -> Mapping[str, Any]:
        answer = await self._api.call(
            method,
            path or f"{self.user}/{edge}",
            self._request.credentials,
            channel_id=self.user,
            json=json,
            params=params,
            creates_post=creates_post,
        )
        self.usage = merge_usage(self.usage, answer.usage)
        return answer.data

    async def create(self, body: Mapping[str, Any]) -> str:
        data = await self.call("POST", GraphEdge.MEDIA, json=body)
        container = data.get("id")
        if not isinstance(container, str | int) or not str(container):
            raise TransientPlatformError(
                f"{_PLATFORM}: container answer without an id", platform=_PLATFORM
            )
        return str(container)
