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
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from herald.config import InstagramSettings
from herald.domain import Content, Media, MediaKind, Platform, utcnow
from herald.errors import (
    ContentInvalid,
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    TransientPlatformError,
)
from herald.platforms import graph
from herald.platforms.content import ensure_valid, with_link
from herald.platforms.graph import GraphApi, GraphError, merge_usage
from herald.platforms.graph_listing import find_post
from herald.platforms.http import HttpClient
from herald.platforms.lookup import require_text
from herald.types import PlatformUsage, Published, PublishRequest

__all__ = [
    "MAX_CAPTION_CHARS",
    "MAX_HASHTAGS",
    "MAX_MEDIA",
    "InstagramConnector",
    "MediaNotReady",
    "caption_of",
    "classify",
    "container_state",
    "validate",
]

_PLATFORM = Platform.INSTAGRAM.value
MAX_MEDIA = 10
MAX_CAPTION_CHARS = 2200
MAX_HASHTAGS = 30
_HASHTAG = re.compile(r"#\w+")
_IG_SUBCODE = re.compile(r"\b(22\d{5})\b")

PUBLISH_LIMIT_CODE = 9
NOT_READY_CODE, NOT_READY_SUBCODE = 9007, 2207027
SPAM = (4, 2207051)
TRANSIENT_CODES = frozenset({-1, -2})
TRANSIENT_SUBCODES = frozenset({2207001, 2207003, 2207032})
BAD_MEDIA_CODES = frozenset({36000, 9004})
BAD_MEDIA_SUBCODES = frozenset({2207004, 2207057, 2207052})


class MediaNotReady(TransientPlatformError):
    """``media_publish`` came too early (9007 / 2207027): poll again, then publish again."""


def _instagram_code(err: GraphError, status: int, wait: float) -> PlatformError | None:
    code, sub, label = err.code, err.subcode, err.label
    message = f"{_PLATFORM}: {err.message or 'error'}"
    kw: dict[str, Any] = {"platform": _PLATFORM, "code": label, "status": status}
    if code == PUBLISH_LIMIT_CODE:
        return RateLimited(message, retry_after=wait, scope="channel", **kw)
    if code == NOT_READY_CODE or sub == NOT_READY_SUBCODE:
        return MediaNotReady(message, **kw)
    if code in TRANSIENT_CODES or sub in TRANSIENT_SUBCODES:
        return TransientPlatformError(message, **kw)
    if (code, sub) == SPAM or code in BAD_MEDIA_CODES or sub in BAD_MEDIA_SUBCODES:
        return ContentRejected(message, **kw)
    return None


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes | Mapping[str, Any] | None,
    *,
    now: datetime,
    pause_s: float,
    creates_post: bool = False,
    channel_id: str | None = None,
    platform: str = _PLATFORM,
) -> PlatformError:
    """The Instagram table of docs/platforms.md; codes it does not name go as Facebook's."""
    err = graph.parse_error(body)
    if err is not None and err.code is not None:
        wait = graph.throttle_wait(status, headers, now=now, pause_s=pause_s, channel_id=channel_id)
        specific = _instagram_code(err, status, wait)
        if specific is not None:
            return graph.unknown_if_sent(specific, creates_post=creates_post)
    return graph.classify(
        status,
        headers,
        body,
        now=now,
        pause_s=pause_s,
        creates_post=creates_post,
        channel_id=channel_id,
        platform=platform,
    )


def container_state(data: Mapping[str, Any]) -> str | None:
    """``"FINISHED"``/``"IN_PROGRESS"``; raise for a container that will never publish."""
    code = str(data.get("status_code") or "")
    if code == "ERROR":
        found = _IG_SUBCODE.search(str(data.get("status") or ""))
        detail = f"{_PLATFORM}: media container failed: {str(data.get('status') or '')[:200]}"
        if found is not None and int(found.group(1)) in TRANSIENT_SUBCODES:
            raise TransientPlatformError(detail, platform=_PLATFORM, code=found.group(1))
        raise ContentRejected(detail, platform=_PLATFORM, code=found.group(1) if found else None)
    if code == "EXPIRED":
        raise ContentRejected(f"{_PLATFORM}: media container expired", platform=_PLATFORM)
    if code == "PUBLISHED":
        # Only this attempt's media_publish can have published it, and its answer was lost.
        raise OutcomeUnknown(f"{_PLATFORM}: container published, id unknown", platform=_PLATFORM)
    return code or None


def caption_of(content: Content) -> str:
    return with_link(content.text, content.link)


def validate(content: Content) -> None:
    count = len(content.media)
    if count == 0:
        raise ContentInvalid("an Instagram post needs at least one image or video", field="media")
    if count > MAX_MEDIA:
        raise ContentInvalid(
            f"an Instagram carousel takes at most {MAX_MEDIA} items, got {count}", field="media"
        )
    caption = caption_of(content)
    if len(caption) > MAX_CAPTION_CHARS:
        raise ContentInvalid(
            f"Instagram caption is {len(caption)} characters (text and link); "
            f"the limit is {MAX_CAPTION_CHARS}",
            field="text",
        )
    tags = len(_HASHTAG.findall(caption))
    if tags > MAX_HASHTAGS:
        raise ContentInvalid(
            f"Instagram caption has {tags} hashtags; the limit is {MAX_HASHTAGS}", field="text"
        )


def _item_body(media: Media) -> dict[str, Any]:
    if media.kind is MediaKind.VIDEO:
        return {"is_carousel_item": True, "media_type": "VIDEO", "video_url": media.url}
    return {"is_carousel_item": True, "image_url": media.url}


def _single_body(media: Media, caption: str) -> dict[str, Any]:
    if media.kind is MediaKind.VIDEO:
        return {"media_type": "REELS", "video_url": media.url, "caption": caption}
    return {"image_url": media.url, "caption": caption}


class InstagramConnector:
    platform = Platform.INSTAGRAM

    def __init__(
        self,
        settings: InstagramSettings,
        *,
        throttle_pause_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._http = HttpClient(_PLATFORM, settings)
        self._graph = GraphApi(
            self._http,
            settings.base_url,
            pause_s=throttle_pause_s,
            classifier=classify,
            clock=clock,
        )

    def usage_of(self, content: Content) -> Mapping[str, int]:
        items = len(content.media)
        return {"publishes": 1, "containers": items + 1 if items > 1 else 1}

    def lookup_usage(self) -> Mapping[str, int]:
        return {}

    def validate(self, content: Content) -> None:
        validate(content)

    async def publish(self, request: PublishRequest) -> Published:
        ensure_valid(validate, request.content, _PLATFORM)
        calls = _Calls(self._graph, request)
        container = await self._container(calls, request.content)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.poll_timeout_s
        interval = self._settings.poll_initial_s
        while True:
            interval = await self._wait_finished(calls, container, deadline, interval)
            try:
                answer = await calls.call(
                    "POST", "media_publish", json={"creation_id": container}, creates_post=True
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
        caption = caption_of(content)
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
            if container_state(data) == "FINISHED":
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

    async def find(self, request: PublishRequest) -> Published | None:
        text = caption_of(request.content)
        require_text(text, _PLATFORM)
        found, usage = await find_post(
            self._graph, request, "media", text, text_field="caption", time_field="timestamp"
        )
        return None if found is None else Published(found, usage=usage)

    async def aclose(self) -> None:
        await self._http.aclose()


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
        data = await self.call("POST", "media", json=body)
        container = data.get("id")
        if not isinstance(container, str | int) or not str(container):
            raise TransientPlatformError(
                f"{_PLATFORM}: container answer without an id", platform=_PLATFORM
            )
        return str(container)
