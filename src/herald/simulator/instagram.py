"""Instagram content publishing on the Graph API: containers, their states, media_publish.

A container is ``IN_PROGRESS`` for the configured processing time, then ``FINISHED``; it
becomes ``PUBLISHED`` once published and ``EXPIRED`` when left unpublished for 24 h. A media
URL whose file name starts with ``broken`` gives a container in ``ERROR`` (the way to test a
failed download). Every container created counts against ``containers_per_24h`` (a carousel
of N is N + 1); every successful ``media_publish`` counts against ``publishes_per_24h``, both
rolling. Only ``media_publish`` creates a post, so only it draws the publish faults;
container creation and status polls draw their own kinds' (a dropped creation makes the
container all the same: an orphan Herald never learns of). An injected error is Instagram's
documented server error (code -1, subcode 2207001), not Graph's code 2.

Instagram Platform calls fall under Graph's Business Use Case limits: every authenticated call
counts against the account's rolling-24 h limit (``calls_per_24h``: 4800 x impressions), and
every answer reports it in ``X-Business-Use-Case-Usage`` with ``type: instagram`` once above
zero.
Over the limit a call is refused with code 80002 and the minutes until access comes back.

A node read (``GET /{id}``) without ``fields`` answers only the ``id``, as Graph's nodes do;
a published media can be read by its id at once (``like_count`` and ``comments_count``
included), while the ``media`` listing shows it only after the listing lag. Its
``insights`` edge answers its lifetime metrics at its age (:mod:`.graph_insights`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web
from yarl import URL

from herald.constants import (
    ContainerStatus,
    GraphCode,
    GraphEdge,
    InstagramCode,
    InstagramSubcode,
)
from herald.domain import Platform
from herald.simulator.audit import PostRecord
from herald.simulator.config import CallKind as C
from herald.simulator.config import ContentKind
from herald.simulator.context import SimContext
from herald.simulator.graph import (
    VERSION,
    GraphFaultAnswers,
    buc_usage,
    catch_all,
    enter,
    graph_error,
    graph_params,
    not_found,
    require_node,
    throttled,
)
from herald.simulator.graph_insights import (
    MEDIA_METRICS,
    insights_answer,
    media_fields,
    metric_names,
)
from herald.simulator.graph_listing import graph_listing
from herald.simulator.graph_params import graph_bool
from herald.simulator.pipeline import Reply, faulty, with_faults
from herald.simulator.quotas import RollingCounter
from herald.simulator.wire import graph_time

__all__ = ["InstagramSim"]

_IG = Platform.INSTAGRAM
_BUC_TYPE = "instagram"
_DAY_S = 86_400.0
_CONTAINER_BASE = 17_900_000_000_000_000
_MEDIA_BASE = 17_950_000_000_000_000
_CAPTION_MAX = 2200
_IMAGE_MAX_BYTES = 8 * 1024 * 1024  # "It should be less than 8 MiB" (error 36000)
_CAROUSEL_MIN, _CAROUSEL_MAX = 2, 10
# A published container's type as the media listing names it.
_LISTED_TYPES = {"IMAGE": "IMAGE", "REELS": "VIDEO", "CAROUSEL": "CAROUSEL_ALBUM"}
_STATUS_TEXT = {
    ContainerStatus.IN_PROGRESS: "In Progress",
    ContainerStatus.FINISHED: "Finished",
    ContainerStatus.PUBLISHED: "Published",
    ContainerStatus.EXPIRED: "Expired: the container was not published within 24 hours",
    ContainerStatus.ERROR: "Error: Media download has failed. The media URI doesn't meet our "
    "requirements. (2207052)",
}
#: Instagram's answer when a rolling-24 h limit is full: code 9 with this subcode, and per
#: counter its message and the title shown to the user.
_LIMIT_SUBCODE = 2207042
_LIMIT_ANSWERS: dict[str, tuple[str, str | None]] = {
    "containers": (
        "(#9) The maximum number of containers ({limit}) per 24 hours has been reached.",
        None,
    ),
    "publishes": (
        "(#9) The maximum number of posts that can be published through the API in a 24-hour "
        "period has been reached.",
        "Publishing limit reached",
    ),
}
#: What a published media carries, for the engagement ground truth.
_CONTENT_KINDS = {
    "IMAGE": ContentKind.IMAGE,
    "REELS": ContentKind.VIDEO,
    "VIDEO": ContentKind.VIDEO,
    "CAROUSEL": ContentKind.CAROUSEL,
}
#: Containers that can no longer be a carousel's children.
_UNUSABLE = (ContainerStatus.ERROR, ContainerStatus.EXPIRED, ContainerStatus.PUBLISHED)


@dataclass(slots=True)
class _Container:
    id: str
    owner: str
    media_type: str  # IMAGE, REELS, VIDEO (carousel items only) or CAROUSEL
    carousel_item: bool
    caption: str
    created: float
    ready_at: float
    broken: bool = False
    media_id: str | None = None


@dataclass(slots=True)
class _Media:
    id: str
    caption: str
    media_type: str
    created: float
    listed: float  # when the media listing starts to show it


@dataclass(slots=True)
class _User:
    containers: RollingCounter
    publishes: RollingCounter
    calls: RollingCounter
    media: list[_Media] = field(default_factory=list)


def _fields(request: web.Request, default: str = "") -> tuple[str, ...]:
    """The ``fields`` asked for; a node read without any answers only its ``id``."""
    raw = request.query.get("fields", default)
    return tuple(raw.split(",")) if raw else ()


def _shortcode(media_id: str) -> str:
    """A stable permalink code for a media id, in the alphabet Instagram's codes use."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    number, code = int(media_id), ""
    while number:
        number, digit = divmod(number, 64)
        code = alphabet[digit] + code
    return code or "A"


def _invalid(message: str) -> Reply:
    return Reply(graph_error(400, 100, f"(#100) {message}"))


def _download_failed(message: str) -> Reply:
    return Reply(
        graph_error(
            400,
            InstagramCode.MEDIA_DOWNLOAD_FAILED,
            message,
            subcode=InstagramSubcode.MEDIA_DOWNLOAD_FAILED,
        )
    )


def _media_url(value: Any, name: str) -> tuple[str, bool]:
    """The URL and whether it names a file the simulator treats as undownloadable."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise _download_failed(
            f"Media download has failed. The {name} doesn't meet our requirements."
        )
    file_name = value.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return value, file_name.startswith("broken")


def _refuse_too_large(url: str) -> None:
    """An image over 8 MiB is refused when its container is made. Its size is known for the
    simulator's own media (their ``bytes``); others are taken as small enough."""
    size = URL(url).query.get("bytes", "")
    if size.isdigit() and int(size) > _IMAGE_MAX_BYTES:
        raise Reply(
            graph_error(
                400,
                InstagramCode.IMAGE_TOO_LARGE,
                "The image size is too large.",
                subcode=InstagramSubcode.IMAGE_TOO_LARGE,
                user_title="Image size too large",
            )
        )


def _restricted() -> web.Response:
    """Built afresh for each answer: each carries a trace id of its own."""
    return graph_error(
        400,
        InstagramCode.RESTRICTED,
        "We restrict certain activity to protect our community. Tell us if you think we made "
        "a mistake.",
        subcode=InstagramSubcode.RESTRICTED_ACTIVITY,
    )


class _InstagramFaultAnswers(GraphFaultAnswers):
    """Instagram documents a server error of its own (HTTP 400, code -1, subcode 2207001:
    "Instagram server error. Try again."), which an injected error answers with instead of
    Graph's generic code 2."""

    def transient(self, account: str) -> web.StreamResponse:
        return graph_error(
            400,
            InstagramCode.SERVER_ERROR,
            "Instagram server error. Try again.",
            subcode=InstagramSubcode.SERVER_ERROR,
            transient=True,
        )


class InstagramSim:
    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._config = ctx.config.instagram
        self._users: dict[str, _User] = defaultdict(self._new_user)
        self._containers: dict[str, _Container] = {}
        self._media: dict[str, tuple[str, _Media]] = {}  # media id: (owner, media)
        self._answers = _InstagramFaultAnswers(ctx, _IG, _BUC_TYPE)
        self._faulty = partial(faulty, ctx, _IG, self._answers)
        self._status = self._faulty(C.STATUS, self.container_status)
        self._read_media = self._faulty(C.READ, self.read_media)

    def _new_user(self) -> _User:
        return _User(
            RollingCounter("containers", self._config.containers_per_24h, _DAY_S),
            RollingCounter("publishes", self._config.publishes_per_24h, _DAY_S),
            RollingCounter("calls", self._config.calls_per_24h, _DAY_S),
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(
                VERSION + "/{node}/" + GraphEdge.MEDIA,
                self._faulty(C.CONTAINER, self.create_container),
            ),
            web.post(VERSION + "/{node}/" + GraphEdge.MEDIA_PUBLISH, self.publish),
            web.get(VERSION + "/{node}/" + GraphEdge.MEDIA, self._faulty(C.READ, self.list_media)),
            web.get(
                VERSION + "/{node}/content_publishing_limit",
                self._faulty(C.READ, self.publishing_limit),
            ),
            web.get(VERSION + "/{node}/" + GraphEdge.INSIGHTS, self._faulty(C.READ, self.insights)),
            web.get(VERSION + "/{node}", self.read_node),
            web.route("*", "/{tail:.*}", catch_all),
        ]

    def status(self, container: _Container, now: float) -> ContainerStatus:
        if container.media_id is not None:
            return ContainerStatus.PUBLISHED
        if container.broken:
            return ContainerStatus.ERROR
        if now >= container.created + self._config.container_ttl_s:
            return ContainerStatus.EXPIRED
        if now >= container.ready_at:
            return ContainerStatus.FINISHED
        return ContainerStatus.IN_PROGRESS

    # -- handlers -------------------------------------------------------------------------
    async def create_container(self, request: web.Request) -> web.StreamResponse:
        node, headers = await self._enter(request)
        params = await graph_params(request)
        now = self._ctx.clock.now()
        if str(params.get("media_type", "")).upper() == "CAROUSEL":
            container = self._carousel(node, params, now)
        else:
            container = self._single(node, params, now)
        user = self._users[node]
        self._refuse_over(node, user.containers, now)
        user.containers.take(now)
        self._containers[container.id] = container
        return web.json_response({"id": container.id}, headers=headers)

    async def publish(self, request: web.Request) -> web.StreamResponse:
        node, headers = await self._enter(request)
        params = await graph_params(request)
        creation_id = str(params.get("creation_id", ""))
        container = self._containers.get(creation_id)
        if container is None or container.owner != node:
            raise not_found(creation_id, request.method)
        now = self._ctx.clock.now()
        self._refuse_unpublishable(container, now)
        if self._ctx.accounts.restricted(_IG, node):
            raise Reply(_restricted())
        user = self._users[node]
        self._refuse_over(node, user.publishes, now)

        def commit(delivered: bool) -> web.StreamResponse:
            at = self._ctx.clock.now()
            user.publishes.take(at)
            media = _Media(
                self._ctx.ids.serial(_MEDIA_BASE),
                container.caption,
                container.media_type,
                at,
                at + self._ctx.dice.listing_lag_s(_IG),
            )
            container.media_id = media.id
            user.media.append(media)
            self._media[media.id] = (node, media)
            record = PostRecord(_IG, node, media.id, media.caption, at, delivered)
            self._ctx.published(record, _CONTENT_KINDS[media.media_type])
            return web.json_response({"id": media.id}, headers=headers)

        return await with_faults(self._ctx, _IG, node, self._answers, commit)

    async def read_node(self, request: web.Request) -> web.StreamResponse:
        """``GET /{id}``: a published media (a read) or a container (a status poll)."""
        if request.match_info["node"] in self._media:
            return await self._read_media(request)
        return await self._status(request)

    async def container_status(self, request: web.Request) -> web.StreamResponse:
        account = await enter(request, self._ctx, _IG)
        headers = self._meter(account)
        node = request.match_info["node"]
        container = self._containers.get(node)
        if container is None or container.owner != account:
            raise not_found(node, request.method)
        fields = _fields(request)
        status = self.status(container, self._ctx.clock.now())
        out = {"id": container.id}
        if "status_code" in fields:
            out["status_code"] = status
        if "status" in fields:
            out["status"] = _STATUS_TEXT[status]
        return web.json_response(out, headers=headers)

    async def read_media(self, request: web.Request) -> web.StreamResponse:
        """``GET /{ig-media-id}``: by the token of its account, at once after publishing."""
        account = await enter(request, self._ctx, _IG)
        headers = self._meter(account)
        node = request.match_info["node"]
        owner, media = self._media[node]
        if owner != account:
            raise not_found(node, request.method)
        fields = _fields(request)
        out: dict[str, Any] = self._render(media, fields)
        if {"like_count", "comments_count"} & set(fields):
            out |= media_fields(
                self._ctx.engagement.observe(_IG, node, self._ctx.clock.now()), fields
            )
        return web.json_response(out, headers=headers)

    async def insights(self, request: web.Request) -> web.StreamResponse:
        """``GET /{ig-media-id}/insights?metric=...``: by the token of its account."""
        account = await enter(request, self._ctx, _IG)
        headers = self._meter(account)
        node = request.match_info["node"]
        owned = self._media.get(node)
        if owned is None or owned[0] != account:
            raise not_found(node, request.method)
        observed = self._ctx.engagement.observe(_IG, node, self._ctx.clock.now())
        answer = insights_answer(node, metric_names(request), observed, MEDIA_METRICS)
        return web.json_response(answer, headers=headers)

    async def publishing_limit(self, request: web.Request) -> web.StreamResponse:
        node, headers = await self._enter(request)
        publishes = self._users[node].publishes
        now = self._ctx.clock.now()
        since = request.query.get("since")
        used = publishes.used(now)
        if since is not None and since.isdigit():
            used = publishes.used_since(now, float(since))
        fields = _fields(request, "quota_usage,config")
        item: dict[str, Any] = {}
        if "quota_usage" in fields:
            item["quota_usage"] = used
        # The reference page's example asks for ``rate_limit_settings`` and gets ``config``.
        if "config" in fields or "rate_limit_settings" in fields:
            item["config"] = {"quota_total": publishes.limit, "quota_duration": int(_DAY_S)}
        return web.json_response({"data": [item]}, headers=headers)

    async def list_media(self, request: web.Request) -> web.StreamResponse:
        node, headers = await self._enter(request)
        fields = _fields(request, "id,caption,timestamp")
        now = self._ctx.clock.now()
        listing = graph_listing(
            request,
            self._users[node].media,
            lambda item: item.created,
            lambda item: self._render(item, fields),
            lambda item: item.listed <= now,
        )
        return web.json_response(listing, headers=headers)

    # -- steps ----------------------------------------------------------------------------
    def _refuse_over(self, node: str, counter: RollingCounter, now: float) -> None:
        """Refuse a call that one of the account's rolling-24 h limits has no room for."""
        if counter.fits(now):
            return
        self._ctx.audit.violation(_IG, node, counter.name, now)
        message, title = _LIMIT_ANSWERS[counter.name]
        raise Reply(
            graph_error(
                400,
                InstagramCode.PUBLISH_LIMIT,
                message.format(limit=counter.limit),
                subcode=_LIMIT_SUBCODE,
                user_title=title,
            )
        )

    async def _enter(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """Authenticate, check the account, count the call; the usage headers to send."""
        account = await enter(request, self._ctx, _IG)
        node = require_node(request, self._ctx, _IG, account)
        return node, self._meter(node)

    def _meter(self, node: str) -> dict[str, str]:
        """One call against the account's Business Use Case limit: refused with 80002 when
        the rolling 24 hours are full; otherwise the usage header (once above zero)."""
        calls = self._users[node].calls
        now = self._ctx.clock.now()
        if not calls.fits(now):
            # 4800 x impressions: a figure Herald cannot know, so not a limit it keeps ahead
            # of (a violation) but one it obeys when told (80002: the account pauses).
            self._ctx.audit.refused(_IG, node, "calls", now)
            regain = math.ceil(calls.regain_s(now) / 60)
            usage = buc_usage(node, _BUC_TYPE, 100, regain)
            raise Reply(throttled(GraphCode.INSTAGRAM_ACCOUNT_TOO_MANY_CALLS, usage))
        calls.take(now)
        percent = calls.percent(now)
        return buc_usage(node, _BUC_TYPE, percent, 0) if percent > 0 else {}

    def _single(self, owner: str, params: dict[str, Any], now: float) -> _Container:
        media_type = str(params.get("media_type", "IMAGE") or "IMAGE").upper()
        item = graph_bool(params.get("is_carousel_item"), False)
        if item is None:
            raise _invalid("param is_carousel_item must be a boolean")
        caption = "" if item else self._caption(params)
        if media_type == "IMAGE":
            if "image_url" not in params:
                raise _invalid("The parameter image_url is required.")
            url, broken = _media_url(params["image_url"], "image_url")
            _refuse_too_large(url)
            ready = now + self._config.image_processing_s
        elif media_type == "REELS" or (media_type == "VIDEO" and item):
            if item and media_type != "VIDEO":
                raise _invalid("carousel video items take media_type=VIDEO")
            _, broken = _media_url(params.get("video_url"), "video_url")
            ready = now + self._config.video_processing_s
        else:
            raise _invalid(f"media_type {media_type} is not supported here")
        return _Container(
            self._ctx.ids.serial(_CONTAINER_BASE),
            owner,
            media_type,
            item,
            caption,
            now,
            ready,
            broken,
        )

    def _carousel(self, owner: str, params: dict[str, Any], now: float) -> _Container:
        raw = params.get("children")
        ids = raw.split(",") if isinstance(raw, str) else raw
        if not isinstance(ids, list) or not _CAROUSEL_MIN <= len(ids) <= _CAROUSEL_MAX:
            raise _invalid(f"param children must list {_CAROUSEL_MIN} to {_CAROUSEL_MAX} ids")
        ready = now + self._config.image_processing_s
        for child_id in ids:
            child = self._containers.get(str(child_id).strip())
            if child is None or child.owner != owner or not child.carousel_item:
                raise _invalid(f"child {child_id} is not a carousel item of this user")
            if self.status(child, now) in _UNUSABLE:
                raise _invalid(f"child {child_id} cannot be used")
            ready = max(ready, child.ready_at)
        return _Container(
            self._ctx.ids.serial(_CONTAINER_BASE),
            owner,
            "CAROUSEL",
            False,
            self._caption(params),
            now,
            ready,
        )

    @staticmethod
    def _caption(params: dict[str, Any]) -> str:
        caption = params.get("caption") or ""
        if not isinstance(caption, str) or len(caption) > _CAPTION_MAX:
            raise _invalid(f"param caption must be a string of at most {_CAPTION_MAX} chars")
        return caption

    def _refuse_unpublishable(self, container: _Container, now: float) -> None:
        if container.carousel_item:
            raise _invalid("a carousel item cannot be published on its own")
        status = self.status(container, now)
        if status is ContainerStatus.IN_PROGRESS:
            raise Reply(
                graph_error(
                    400,
                    InstagramCode.NOT_READY,
                    "The requested resource does not exist",
                    subcode=InstagramSubcode.NOT_READY,
                    user_title="Media ID is not available",
                )
            )
        if status is ContainerStatus.PUBLISHED:
            raise _invalid("the container has already been published")
        if status is ContainerStatus.EXPIRED:
            raise Reply(
                graph_error(
                    400, InstagramCode.MEDIA_TIMEOUT, "The container has expired", subcode=2207020
                )
            )
        if status is ContainerStatus.ERROR:
            raise _download_failed(_STATUS_TEXT[ContainerStatus.ERROR])

    @staticmethod
    def _render(media: _Media, fields: tuple[str, ...]) -> dict[str, str]:
        out = {"id": media.id}
        if "caption" in fields and media.caption:
            out["caption"] = media.caption
        if "timestamp" in fields:
            out["timestamp"] = graph_time(media.created)
        if "media_type" in fields:
            out["media_type"] = _LISTED_TYPES[media.media_type]
        if "permalink" in fields:
            out["permalink"] = f"https://www.instagram.com/p/{_shortcode(media.id)}/"
        return out
