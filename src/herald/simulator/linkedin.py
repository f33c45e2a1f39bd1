"""LinkedIn's Posts API: posts, image uploads, and the author's posts listing.

Every ``POST /rest/posts`` that passes authentication and the version headers is one call
against the member's daily counter (and the app's, when configured), days in UTC, checked
before the body is even read: the platform meters calls, not successes. Over either, the
answer is the 429 ``Resource level throttle ... DAY limit`` body and a limit violation.
Image uploads are not metered. The upload URL points back at this same server; the bytes
PUT there are counted and hashed as they arrive, never kept (the post's audit record carries
the image's size and SHA-256).

With ``reject_duplicates`` (the default), a post whose non-empty commentary equals one the
same author made within the duplicate check's memory (24 hours) is refused with LinkedIn's
422 ``DUPLICATE_POST`` body, naming the existing share, most of the time
(``duplicate_check.refuse_share``): the check is the platform's, not a promise. The author's
posts are listed newest first, ``count`` (at most 100) from offset ``start``, with the
``total`` in ``paging``, once each has shown (``listing_lag``: the listing is eventually
consistent). A post's likes and comments (``socialActions``) and its statistics
(``memberCreatorPostAnalytics``) are answered at its age (:mod:`.linkedin_insights`), to its
author only; like every read, they are not metered.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from typing import Any

from aiohttp import web

from herald.constants import (
    LINKEDIN_DUPLICATE_POST,
    RESTLI_PROTOCOL_VERSION,
    LinkedInDailyLimit,
    LinkedInHeader,
    LinkedInPath,
)
from herald.domain import Platform
from herald.simulator.accounts import TokenStatus
from herald.simulator.audit import PostRecord
from herald.simulator.config import CallKind, ContentKind
from herald.simulator.context import SimContext
from herald.simulator.linkedin_body import PostBody, validate_post
from herald.simulator.linkedin_insights import (
    ANALYTICS_TYPES,
    parse_entity,
    post_analytics,
    social_actions,
)
from herald.simulator.pipeline import Reply, faulty, identify, with_faults
from herald.simulator.quotas import Counter, DailyCounter, admit
from herald.simulator.versions import linkedin_active
from herald.simulator.wire import bearer_token, int_param, read_json_object

__all__ = ["LinkedInSim", "li_error"]

_LI = Platform.LINKEDIN
_SHARE_BASE = 7_400_000_000_000_000_000
_MAX_START = 1_000_000
_VERSION = re.compile(r"^\d{6}$")
_SORTS = ("LAST_MODIFIED", "CREATED")
_READ = 64 * 1024  # bytes of an upload read at a time
_AUTH_ERRORS = {
    TokenStatus.MISSING: (65604, "EMPTY_ACCESS_TOKEN", "Empty oauth2 access token"),
    TokenStatus.UNKNOWN: (65600, "INVALID_ACCESS_TOKEN", "Invalid access token"),
    TokenStatus.EXPIRED: (
        65600,
        "EXPIRED_ACCESS_TOKEN",
        "The token used in the request has expired",
    ),
    TokenStatus.REVOKED: (
        65601,
        "REVOKED_ACCESS_TOKEN",
        "The token used in the request has been revoked by the user",
    ),
}


def li_error(
    status: int,
    message: str,
    *,
    code: str | None = None,
    service_code: int | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, object] = {"status": status, "message": message}
    if code is not None:
        body["code"] = code
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    return web.json_response(body, status=status, headers=headers)


@dataclass(slots=True)
class _Post:
    id: str
    body: PostBody
    created_ms: int
    listed: float  # Unix seconds: when the author's listing starts to show it


@dataclass(slots=True)
class _Image:
    """An upload opened by ``initializeUpload``; ``size`` stays 0 until its bytes arrive,
    which are counted and hashed as they do, never kept."""

    owner: str
    expires_at: float
    size: int = 0
    sha256: str | None = None


@dataclass(slots=True)
class _Member:
    day_posts: DailyCounter
    posts: list[_Post] = field(default_factory=list)
    latest: dict[str, _Post] = field(default_factory=dict)  # commentary -> its newest post


def _duplicate(existing: str) -> Reply:
    # LinkedIn's own body: the Rest.li exception text, then the input error's code.
    body: dict[str, Any] = {
        "errorDetailType": "com.linkedin.common.error.BadRequest",
        "message": "com.linkedin.content.common.exception.BadRequestResponseException: "
        f"Content is a duplicate of {existing}",
        "errorDetails": {
            "inputErrors": [
                {
                    "description": "Duplicate post is detected",
                    "input": {},
                    "code": LINKEDIN_DUPLICATE_POST,
                }
            ]
        },
        "status": 422,
    }
    return Reply(web.json_response(body, status=422))


def _content_kind(body: PostBody) -> ContentKind:
    content = body.content or {}
    if "media" in content:
        return ContentKind.IMAGE  # the simulator takes image uploads only
    return ContentKind.LINK if "article" in content else ContentKind.TEXT


class LinkedInFaultAnswers:
    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx

    def transient(self, account: str) -> web.StreamResponse:
        return li_error(503, "Service Unavailable")

    def throttle(self, account: str) -> web.StreamResponse:
        retry_after = self._ctx.dice.faults(_LI).retry_after_s
        headers = None if retry_after is None else {"Retry-After": str(retry_after)}
        return li_error(429, "Too Many Requests", headers=headers)


class LinkedInSim:
    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._config = ctx.config.linkedin
        limit = self._config.app_posts_per_day
        self._app_posts = None if limit is None else DailyCounter("app_posts", limit, "UTC")
        self._members: dict[str, _Member] = defaultdict(self._new_member)
        self._images: dict[str, _Image] = {}
        self._answers = LinkedInFaultAnswers(ctx)
        self._faulty = partial(faulty, ctx, _LI, self._answers)

    def _new_member(self) -> _Member:
        return _Member(DailyCounter("member_posts", self._config.member_posts_per_day, "UTC"))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(LinkedInPath.POSTS, self.create_post),
            web.get(LinkedInPath.POSTS, self._faulty(CallKind.READ, self.list_posts)),
            web.get(LinkedInPath.POSTS + "/{urn}", self._faulty(CallKind.READ, self.read_post)),
            web.post(LinkedInPath.IMAGES, self._faulty(CallKind.UPLOAD, self.images_action)),
            web.put("/dms-uploads/{key}", self._faulty(CallKind.UPLOAD, self.upload_image)),
            web.get(
                LinkedInPath.SOCIAL_ACTIONS + "/{urn}",
                self._faulty(CallKind.READ, self.read_social_actions),
            ),
            web.get(
                LinkedInPath.POST_ANALYTICS, self._faulty(CallKind.READ, self.read_post_analytics)
            ),
            web.route("*", "/{tail:.*}", self.not_found),
        ]

    # -- handlers -------------------------------------------------------------------------
    async def create_post(self, request: web.Request) -> web.StreamResponse:
        author = self._enter(request)
        self._meter(author)
        raw = await read_json_object(request)
        if raw is None:
            raise Reply(li_error(400, "The request body must be a JSON object"))
        body = validate_post(raw, author, self._image_ready)
        member = self._members[author]
        self._refuse_duplicate(member, body.commentary)

        def commit(delivered: bool) -> web.StreamResponse:
            now = self._ctx.clock.now()
            urn = f"urn:li:share:{self._ctx.ids.serial(_SHARE_BASE)}"
            post = _Post(urn, body, int(now * 1000), now + self._ctx.dice.listing_lag_s(_LI))
            member.posts.append(post)
            if body.commentary:
                member.latest[body.commentary] = post
            image = self._image_of(body)
            self._ctx.published(
                PostRecord(
                    _LI,
                    author,
                    urn,
                    body.commentary,
                    now,
                    delivered,
                    media_bytes=None if image is None else image.size,
                    media_sha256=None if image is None else image.sha256,
                ),
                _content_kind(body),
            )
            return web.Response(
                status=201, headers={LinkedInHeader.RESTLI_ID: urn, "x-linkedin-id": urn}
            )

        return await with_faults(self._ctx, _LI, author, self._answers, commit)

    async def list_posts(self, request: web.Request) -> web.StreamResponse:
        author = self._enter(request)
        query = request.query
        if query.get("q") != "author":
            raise Reply(li_error(400, "Unsupported finder: use q=author", code="ILLEGAL_ARGUMENT"))
        if query.get("author") != author:
            raise Reply(self._forbidden("FINDER-author"))
        count = int_param(query.get("count"), 10, low=1, high=100)
        start = int_param(query.get("start"), 0, low=0, high=_MAX_START)
        if count is None or start is None or query.get("sortBy", "LAST_MODIFIED") not in _SORTS:
            raise Reply(li_error(400, "Invalid count, start or sortBy", code="ILLEGAL_ARGUMENT"))
        now = self._ctx.clock.now()
        posts = [post for post in self._members[author].posts if post.listed <= now]
        newest = islice(reversed(posts), start, start + count)
        elements = [self._render(author, post) for post in newest]
        paging = {"start": start, "count": count, "total": len(posts), "links": []}
        return web.json_response({"elements": elements, "paging": paging})

    async def read_post(self, request: web.Request) -> web.StreamResponse:
        """``GET /rest/posts/{url-encoded urn}``: the author's post, at once after it was made
        (only the author finder lags)."""
        author = self._enter(request)
        urn = request.match_info["urn"]  # the router has decoded %3A back to ':'
        return web.json_response(self._render(author, self._own_post(author, urn)))

    async def read_social_actions(self, request: web.Request) -> web.StreamResponse:
        """``GET /rest/socialActions/{urn}``: the summary of a post's likes and comments."""
        author = self._enter(request)
        post = self._own_post(author, request.match_info["urn"])
        observed = self._ctx.engagement.observe(_LI, post.id, self._ctx.clock.now())
        return web.json_response(social_actions(post.id, observed))

    async def read_post_analytics(self, request: web.Request) -> web.StreamResponse:
        """``GET /rest/memberCreatorPostAnalytics?q=entity``: one count of one post."""
        author = self._enter(request)
        query = request.query
        entity = parse_entity(query.get("entity", ""))
        query_type = query.get("queryType", "")
        if query.get("q") != "entity" or entity is None or query_type not in ANALYTICS_TYPES:
            raise Reply(li_error(400, "Invalid q, entity or queryType", code="ILLEGAL_ARGUMENT"))
        if query.get("aggregation", "TOTAL") != "TOTAL":
            raise Reply(
                li_error(
                    400, "The simulator answers aggregation=TOTAL only", code="ILLEGAL_ARGUMENT"
                )
            )
        post = self._own_post(author, entity[1])
        observed = self._ctx.engagement.observe(_LI, post.id, self._ctx.clock.now())
        return web.json_response(post_analytics(entity[0], post.id, query_type, observed))

    async def images_action(self, request: web.Request) -> web.StreamResponse:
        author = self._enter(request)
        if request.query.get("action") != "initializeUpload":
            raise Reply(li_error(400, "Unsupported action", code="ILLEGAL_ARGUMENT"))
        raw = await read_json_object(request)
        init = raw.get("initializeUploadRequest") if raw else None
        if not isinstance(init, dict) or not isinstance(init.get("owner"), str):
            raise Reply(li_error(422, "ERROR :: /initializeUploadRequest/owner :: missing"))
        if init["owner"] != author:
            raise Reply(self._forbidden("ACTION-initializeUpload"))
        now = self._ctx.clock.now()
        key = self._ctx.ids.chars("D4E10AQ", 16)
        expires = now + self._config.upload_url_ttl_s
        self._images[key] = _Image(author, expires)
        return web.json_response(
            {
                "value": {
                    "uploadUrlExpiresAt": int(expires * 1000),
                    "uploadUrl": f"{request.url.origin()}/dms-uploads/{key}",
                    "image": f"urn:li:image:{key}",
                }
            }
        )

    async def upload_image(self, request: web.Request) -> web.StreamResponse:
        token = self._ctx.accounts.check(_LI, bearer_token(request))
        image = self._images.get(request.match_info["key"])
        if image is None:
            raise Reply(li_error(404, "No such upload"))
        if not token.ok or token.account != image.owner:
            raise Reply(li_error(401, "Invalid access token", service_code=65600))
        identify(request, self._ctx, _LI, image.owner)
        if self._ctx.clock.now() >= image.expires_at:
            raise Reply(li_error(400, "The upload URL has expired"))
        digest, size = hashlib.sha256(), 0
        async for piece in request.content.iter_chunked(_READ):
            digest.update(piece)
            size += len(piece)
        if not size:
            raise Reply(li_error(400, "The upload is empty"))
        image.size, image.sha256 = size, digest.hexdigest()
        return web.Response(status=201)

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        return li_error(404, "No virtual resource found")

    # -- steps ----------------------------------------------------------------------------
    def _own_post(self, author: str, urn: str) -> _Post:
        """``author``'s post ``urn``: 403 for another member's, 404 for no post at all."""
        for owner, member in self._members.items():
            post = next((p for p in member.posts if p.id == urn), None)
            if post is None:
                continue
            if owner != author:
                raise Reply(self._forbidden("GET"))
            return post
        raise Reply(li_error(404, f"Post {urn} not found", code="NOT_FOUND"))

    def _enter(self, request: web.Request) -> str:
        """Authenticate, then check the versioning headers every ``/rest`` call needs."""
        check = self._ctx.accounts.check(_LI, bearer_token(request))
        if not check.ok or check.account is None:
            service, code, message = _AUTH_ERRORS[check.status]
            raise Reply(li_error(401, message, code=code, service_code=service))
        identify(request, self._ctx, _LI, check.account)
        self._check_version(request)
        return check.account

    def _check_version(self, request: web.Request) -> None:
        version = request.headers.get(LinkedInHeader.VERSION)
        if not version:
            raise Reply(
                li_error(
                    400,
                    "A version must be present. Please specify a version by adding the "
                    f"{LinkedInHeader.VERSION} header.",
                    code="VERSION_MISSING",
                )
            )
        if not _VERSION.match(version):
            raise Reply(li_error(400, f"Invalid version {version}", code="INVALID_VERSION"))
        today = datetime.fromtimestamp(self._ctx.clock.now(), UTC).date()
        if not linkedin_active(version, today):
            raise Reply(
                li_error(
                    426,
                    f"Requested version {version}01 is not active",
                    code="NONEXISTENT_VERSION",
                )
            )
        if request.headers.get(LinkedInHeader.RESTLI_PROTOCOL) != RESTLI_PROTOCOL_VERSION:
            raise Reply(
                li_error(400, f"{LinkedInHeader.RESTLI_PROTOCOL} must be {RESTLI_PROTOCOL_VERSION}")
            )

    def _meter(self, author: str) -> None:
        now = self._ctx.clock.now()
        member_day = self._members[author].day_posts
        claims: list[tuple[Counter, int]] = [(member_day, 1)]
        if self._app_posts is not None:
            claims.append((self._app_posts, 1))
        refused = admit(now, claims)
        if refused is None:
            return
        limit = (
            LinkedInDailyLimit.MEMBER if refused is member_day else LinkedInDailyLimit.APPLICATION
        )
        self._ctx.audit.violation(_LI, author, refused.name, now)
        raise Reply(
            li_error(
                429,
                f"Resource level throttle {limit} limit for calls to this resource is reached.",
            )
        )

    def _refuse_duplicate(self, member: _Member, commentary: str) -> None:
        if not self._config.reject_duplicates or not commentary:
            return
        check = self._config.duplicate_check
        earlier = member.latest.get(commentary)
        now_ms = int(self._ctx.clock.now() * 1000)
        if earlier is None or now_ms - earlier.created_ms >= check.memory_s * 1000:
            return
        if self._ctx.dice.refuses_repeat(_LI, check.refuse_share):
            self._ctx.audit.duplicates_refused += 1
            raise _duplicate(earlier.id)

    def _image_of(self, body: PostBody) -> _Image | None:
        media = (body.content or {}).get("media")
        urn = media.get("id") if isinstance(media, dict) else None
        return self._images.get(urn.removeprefix("urn:li:image:")) if urn else None

    def _image_ready(self, urn: str, author: str) -> bool:
        image = self._images.get(urn.removeprefix("urn:li:image:"))
        return image is not None and image.owner == author and image.size > 0

    def _forbidden(self, what: str) -> web.Response:
        return li_error(
            403,
            f"Not enough permissions to access: partnerApiPostsExternal.{what}",
            code="ACCESS_DENIED",
            service_code=100,
        )

    @staticmethod
    def _render(author: str, post: _Post) -> dict[str, object]:
        out: dict[str, object] = {
            "id": post.id,
            "author": author,
            "commentary": post.body.commentary,
            "createdAt": post.created_ms,
            "lastModifiedAt": post.created_ms,
            "publishedAt": post.created_ms,
            "lifecycleState": "PUBLISHED",
            "visibility": post.body.visibility,
            "isReshareDisabledByAuthor": post.body.reshare_disabled,
            "distribution": post.body.distribution,
        }
        if post.body.content is not None:
            out["content"] = post.body.content
        return out
