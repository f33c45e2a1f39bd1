"""Facebook Pages on the Graph API: feed posts, photos, the Page's listings (``feed``,
``posts``, ``published_posts``), a post read by its id (with its ``reactions``,
``comments`` and ``shares``) and its ``insights`` (see :mod:`.graph_insights`).

Every authenticated request on a Page is one call against the Page's rolling-24 h limit
(4800 x engaged users) and the app's rolling-1 h limit (200 x daily active users), as in
docs/platforms.md. Both are checked before anything else happens; over either, the answer is
HTTP 400 with code 32 (Page) or 4 (app) and a limit violation is recorded.

The simulator's tokens are Page tokens, which Graph meters by the Page's Business Use Case
limit: answers carry ``X-Business-Use-Case-Usage`` for the Page (once above zero, in floored
percent), never ``X-App-Usage``, which Graph sends for app and user tokens. The app's hourly
limit is Herald's conservative default; when it is the one that refuses, the answer names it
with code 4 and ``X-App-Usage`` at 100.

A repeat of a Page's recent post (same text and link) is refused with code 506 most of the
time, and only within the duplicate check's memory (``duplicate_check``): Graph's check is
a heuristic, not a promise. A new post shows in the listings after the listing lag, but can
be read by its id at once: nothing in Graph's documents says a node lags.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeGuard

from aiohttp import web

from herald.constants import GraphCode, GraphEdge
from herald.domain import Platform
from herald.simulator.audit import PostRecord
from herald.simulator.config import CallKind, ContentKind
from herald.simulator.context import SimContext
from herald.simulator.graph import (
    VERSION,
    GraphFaultAnswers,
    app_usage,
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
    POST_METRICS,
    insights_answer,
    metric_names,
    post_fields,
    split_fields,
)
from herald.simulator.graph_listing import graph_listing
from herald.simulator.graph_params import graph_bool
from herald.simulator.pipeline import Reply, faulty, with_faults
from herald.simulator.quotas import RollingCounter, admit
from herald.simulator.wire import graph_time

__all__ = ["FacebookSim"]

_FB = Platform.FACEBOOK
_DAY_S = 86_400.0
_HOUR_S = 3_600.0
_POST_BASE = 122_100_000_000_000_000
_PHOTO_BASE = 122_200_000_000_000_000
_DEFAULT_FIELDS = ("id", "message", "created_time")


@dataclass(slots=True)
class _Post:
    """A Page post as ``published_posts`` lists it; ``created`` and ``listed`` (when the
    listing starts to show it) in Unix seconds."""

    id: str
    message: str
    created: float
    listed: float


@dataclass(slots=True, eq=False)
class _Photo:
    """An uploaded photo: a post of its own once published, else kept for one feed post.
    Compared by identity: one upload cannot be attached twice."""

    id: str
    url: str
    published: bool
    attached: bool = False


@dataclass(slots=True)
class _Page:
    calls: RollingCounter
    posts: list[_Post] = field(default_factory=list)
    photos: dict[str, _Photo] = field(default_factory=dict)
    # (text, link): when it was last posted, for the duplicate check
    seen: dict[tuple[str, str], float] = field(default_factory=dict)
    by_id: dict[str, _Post] = field(default_factory=dict)


def _is_url(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _json_text(value: Any) -> Any:
    """A parameter given as JSON text (a form field, or ``attached_media[0]={...}``) decoded;
    anything else as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _feed_kind(photos: int, link: bool) -> ContentKind:
    if photos:
        return ContentKind.IMAGE if photos == 1 else ContentKind.CAROUSEL
    return ContentKind.LINK if link else ContentKind.TEXT


def _fields(request: web.Request) -> tuple[str, ...]:
    raw = request.query.get("fields")
    return tuple(raw.split(",")) if raw else _DEFAULT_FIELDS


def _invalid(message: str) -> Reply:
    return Reply(graph_error(400, 100, f"(#100) {message}"))


class FacebookSim:
    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._config = ctx.config.facebook
        self._app_calls = RollingCounter("app_calls", self._config.app_calls_per_1h, _HOUR_S)
        self._pages: dict[str, _Page] = defaultdict(self._new_page)
        self._answers = GraphFaultAnswers(ctx, _FB, "pages")
        self._read = partial(faulty, ctx, _FB, self._answers, CallKind.READ)

    def _new_page(self) -> _Page:
        return _Page(RollingCounter("page_calls", self._config.page_calls_per_24h, _DAY_S))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(VERSION + "/{node}/" + GraphEdge.FEED, self.feed),
            web.post(VERSION + "/{node}/" + GraphEdge.PHOTOS, self.photos),
            *(
                web.get(VERSION + "/{node}/" + edge, self._read(self.published_posts))
                for edge in (GraphEdge.PUBLISHED_POSTS, GraphEdge.FEED, GraphEdge.POSTS)
            ),
            web.get(VERSION + "/{node}/" + GraphEdge.INSIGHTS, self._read(self.insights)),
            web.get(
                VERSION + "/{node}/" + GraphEdge.INSIGHTS + "/{metric}", self._read(self.insights)
            ),
            web.get(VERSION + "/{node}", self._read(self.read_node)),
            web.route("*", "/{tail:.*}", catch_all),
        ]

    # -- handlers -------------------------------------------------------------------------
    async def feed(self, request: web.Request) -> web.StreamResponse:
        node, headers = await self._enter(request)
        page = self._pages[node]
        params = await graph_params(request)
        message, link = params.get("message"), params.get("link")
        if message is not None and not isinstance(message, str):
            raise _invalid("param message must be a string")
        if link is not None and not _is_url(link):
            raise _invalid("param link must be a valid URL")
        if graph_bool(params.get("published"), True) is not True:
            raise _invalid("the simulator publishes feed posts at once (published=true)")
        photos = self._attachments(page, params.get("attached_media"))
        if not message and not link and not photos:
            raise _invalid("Missing message or attachment")
        text = message or ""
        self._refuse_duplicate(page, text, link or "", headers)
        kind = _feed_kind(len(photos), bool(link))

        def commit(delivered: bool) -> web.StreamResponse:
            post_id = self._publish(node, page, text, link or "", delivered, kind=kind)
            for photo in photos:
                photo.attached = True
            return web.json_response({"id": post_id}, headers=headers)

        return await with_faults(self._ctx, _FB, node, self._answers, commit)

    async def photos(self, request: web.Request) -> web.StreamResponse:
        node, headers = await self._enter(request)
        page = self._pages[node]
        params = await graph_params(request)
        url = params.get("url")
        if not _is_url(url):
            raise _invalid("param url must be a valid image URL")
        caption = params.get("caption", params.get("message")) or ""
        if not isinstance(caption, str):
            raise _invalid("param caption must be a string")
        published = graph_bool(params.get("published"), True)
        if published is None:
            raise _invalid("param published must be a boolean")
        if published:
            self._refuse_duplicate(page, caption, url, headers)

        def commit(delivered: bool) -> web.StreamResponse:
            photo = _Photo(self._ctx.ids.serial(_PHOTO_BASE), url, published)
            page.photos[photo.id] = photo
            if not published:
                return web.json_response({"id": photo.id}, headers=headers)
            post_id = self._publish(node, page, caption, url, delivered, kind=ContentKind.IMAGE)
            return web.json_response({"id": photo.id, "post_id": post_id}, headers=headers)

        return await with_faults(self._ctx, _FB, node, self._answers, commit)

    async def published_posts(self, request: web.Request) -> web.StreamResponse:
        """``published_posts``, ``posts`` and ``feed``: the simulator's Pages hold only their
        own posts, so the three list the same ones."""
        node, headers = await self._enter(request)
        fields = _fields(request)
        now = self._ctx.clock.now()
        listing = graph_listing(
            request,
            self._pages[node].posts,
            lambda post: post.created,
            lambda post: self._render(post, fields),
            lambda post: post.listed <= now,
        )
        return web.json_response(listing, headers=headers)

    async def read_node(self, request: web.Request) -> web.StreamResponse:
        """``GET /{post-id}``: a Page post, by the token of its Page; also the Page itself."""
        account = await enter(request, self._ctx, _FB)
        headers = self._meter(account)
        node = request.match_info["node"]
        if node == account:
            page = self._ctx.accounts.get(_FB, account)
            name = page.name if page is not None else account
            return web.json_response({"name": name, "id": account}, headers=headers)
        post = self._post(account, node, request.method)
        out: dict[str, Any] = self._render(post, _fields(request))
        wanted = split_fields(request.query.get("fields", ""))
        if any(name in ("reactions", "comments", "shares") for name, _ in wanted):
            observed = self._ctx.engagement.observe(_FB, post.id, self._ctx.clock.now())
            out |= post_fields(observed, wanted)
        return web.json_response(out, headers=headers)

    async def insights(self, request: web.Request) -> web.StreamResponse:
        """``GET /{page-post-id}/insights?metric=...`` or ``/insights/{metric}``: a Page
        post's lifetime metrics at its age, by the token of its Page."""
        account = await enter(request, self._ctx, _FB)
        headers = self._meter(account)
        post = self._post(account, request.match_info["node"], request.method)
        observed = self._ctx.engagement.observe(_FB, post.id, self._ctx.clock.now())
        answer = insights_answer(post.id, metric_names(request), observed, POST_METRICS)
        return web.json_response(answer, headers=headers)

    # -- steps ----------------------------------------------------------------------------
    def _post(self, account: str, node: str, method: str) -> _Post:
        """The Page's own post ``node``; Graph's not-found answer for any other id."""
        post = self._pages[account].by_id.get(node) if node.startswith(f"{account}_") else None
        if post is None:
            raise not_found(node, method)
        return post

    async def _enter(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """Authenticate, check the Page, meter the call; the usage headers to answer with."""
        account = await enter(request, self._ctx, _FB)
        node = require_node(request, self._ctx, _FB, account)
        return node, self._meter(node)

    def _meter(self, node: str) -> dict[str, str]:
        """One call against the Page's and the app's limits; the usage headers to send."""
        now = self._ctx.clock.now()
        page_calls = self._pages[node].calls
        refused = admit(now, [(page_calls, 1), (self._app_calls, 1)])
        if refused is page_calls:
            self._ctx.audit.violation(_FB, node, "page_calls", now)
            regain = math.ceil(page_calls.regain_s(now) / 60)
            usage = buc_usage(node, "pages", 100, regain)
            raise Reply(throttled(GraphCode.PAGE_TOO_MANY_CALLS, usage))
        if refused is self._app_calls:
            self._ctx.audit.violation(_FB, node, "app_calls", now)
            raise Reply(throttled(GraphCode.TOO_MANY_CALLS, app_usage(100)))
        return self._usage_headers(node, page_calls, now)

    @staticmethod
    def _usage_headers(node: str, page_calls: RollingCounter, now: float) -> dict[str, str]:
        # A Page token's answers report the Page's Business Use Case usage only.
        page_pct = page_calls.percent(now)
        return buc_usage(node, "pages", page_pct, 0) if page_pct > 0 else {}

    def _attachments(self, page: _Page, raw: Any) -> list[_Photo]:
        if raw is None:
            return []
        raw = _json_text(raw)
        if not isinstance(raw, list):
            raise _invalid("param attached_media must be an array")
        photos: list[_Photo] = []
        for index, element in enumerate(raw):
            item = _json_text(element)
            fbid = item.get("media_fbid") if isinstance(item, dict) else None
            photo = page.photos.get(str(fbid))
            if photo is None or photo.published or photo.attached or photo in photos:
                raise _invalid(f"param attached_media[{index}] has invalid media_fbid")
            photos.append(photo)
        return photos

    def _refuse_duplicate(self, page: _Page, text: str, link: str, headers: dict[str, str]) -> None:
        if not self._config.reject_duplicates or not text:
            return
        check = self._config.duplicate_check
        at = page.seen.get((text, link))
        if at is None or self._ctx.clock.now() - at >= check.memory_s:
            return
        if self._ctx.dice.refuses_repeat(_FB, check.refuse_share):
            self._ctx.audit.duplicates_refused += 1
            duplicate = graph_error(
                400, GraphCode.DUPLICATE_POST, "(#506) Duplicate status message", headers=headers
            )
            raise Reply(duplicate)

    def _publish(
        self, node: str, page: _Page, text: str, link: str, delivered: bool, *, kind: ContentKind
    ) -> str:
        now = self._ctx.clock.now()
        post_id = f"{node}_{self._ctx.ids.serial(_POST_BASE)}"
        post = _Post(post_id, text, now, now + self._ctx.dice.listing_lag_s(_FB))
        page.posts.append(post)
        page.by_id[post_id] = post
        if text:
            page.seen[(text, link)] = now
        self._ctx.published(PostRecord(_FB, node, post_id, text, now, delivered), kind)
        return post_id

    @staticmethod
    def _render(post: _Post, fields: tuple[str, ...]) -> dict[str, str]:
        out = {"id": post.id}
        if "message" in fields and post.message:
            out["message"] = post.message
        if "created_time" in fields:
            out["created_time"] = graph_time(post.created)
        return out
