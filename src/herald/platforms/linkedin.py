"""LinkedIn connector (Posts API): text, article link, or one image.

``commentary`` is LinkedIn "little text": reserved characters are backslash-escaped so the
text arrives as written, and look-ups compare against that escaped text. An image is
uploaded first (``initializeUpload``, then a ``PUT`` of the bytes streamed from the media
URL); only the final ``POST /rest/posts`` can create a post. LinkedIn sends no rate-limit
headers: its daily limits reset at 00:00 UTC, and the 429 body says which one was hit.
LinkedIn refuses the same commentary twice from one author (422, "Content is a duplicate of
urn:li:share:..."): that is :class:`DuplicateRejected`. Look-ups page through the author's
posts, 100 at a time, by ``start`` offset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from yarl import URL

from herald.config import LinkedInSettings
from herald.constants import (
    LINKEDIN_DUPLICATE_POST,
    LINKEDIN_VERSION_REFUSED_PAUSE_S,
    RESTLI_PROTOCOL_VERSION,
    LinkedInDailyLimit,
    LinkedInHeader,
    LinkedInPath,
)
from herald.domain import Content, Platform
from herald.errors import (
    DuplicateRejected,
    LimitScope,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    TransientPlatformError,
)
from herald.platforms.answers import ErrorAnswer, by_status
from herald.platforms.connector import HttpConnector
from herald.platforms.http import HttpResponse, bearer, exchange, header
from herald.platforms.lookup import Candidate, Page, from_epoch_ms, oldest, require_text, scan
from herald.platforms.rules import linkedin_commentary
from herald.types import Published, PublishRequest

__all__ = ["PAGE_COUNT", "LinkedInConnector", "classify"]

_PLATFORM = Platform.LINKEDIN.value
#: Posts per listing page a look-up asks for: the finder's maximum ``count``.
PAGE_COUNT = 100
DUPLICATE_STATUS = 422
_DUPLICATE_MESSAGE = re.compile(r"\bduplicate of urn:li:", re.IGNORECASE)


def _next_utc_midnight(now: datetime) -> float:
    today = now.astimezone(UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    return (midnight - now).total_seconds()


def _throttle(message: str, answer: ErrorAnswer) -> RateLimited:
    kw: dict[str, Any] = {"platform": _PLATFORM, "status": 429}
    text = f"{_PLATFORM}: {message}"
    upper = message.upper()
    explicit = answer.retry_after()
    if LinkedInDailyLimit.MEMBER in upper or LinkedInDailyLimit.APPLICATION in upper:
        # A daily limit: the member's binds this channel, the application's every channel.
        scope: LimitScope = "channel" if LinkedInDailyLimit.MEMBER in upper else "app"
        wait = _next_utc_midnight(answer.now) if explicit is None else explicit
        return RateLimited(text, retry_after=wait, scope=scope, **kw)
    # A short protective throttle: LinkedIn says neither why nor, unless Retry-After, how long.
    return answer.throttle(text, scope="app", **kw)


def _is_duplicate(status: int, data: Mapping[str, Any]) -> bool:
    """A 422 that says the commentary repeats an existing post (message or input error)."""
    if status != DUPLICATE_STATUS:
        return False
    if _DUPLICATE_MESSAGE.search(str(data.get("message") or "")):
        return True
    details = data.get("errorDetails")
    errors = details.get("inputErrors") if isinstance(details, Mapping) else None
    return isinstance(errors, list) and any(
        isinstance(e, Mapping) and e.get("code") == LINKEDIN_DUPLICATE_POST for e in errors
    )


def classify(answer: ErrorAnswer) -> PlatformError:
    """The LinkedIn table of docs/platforms.md: one error answer -> one Herald error."""
    data = answer.json()
    data = data if isinstance(data, Mapping) else {}
    status = answer.status
    message = str(data.get("message") or f"HTTP {status}")[:300]
    raw_code = data.get("serviceErrorCode", data.get("code"))
    code = None if raw_code is None else str(raw_code)
    text = f"{_PLATFORM}: {message}"
    if status == 429:
        return _throttle(message, answer)
    if status == 426:
        # The version Herald speaks is sunset: every LinkedIn call is refused until an operator
        # updates linkedin.api_version. Nothing was made, and the posts are not at fault, so
        # the app is paused and tried again, not each post failed for good.
        return RateLimited(
            f"{text} (update linkedin.api_version)",
            retry_after=LINKEDIN_VERSION_REFUSED_PAUSE_S,
            scope="app",
            platform=_PLATFORM,
            status=status,
            code=code,
        )
    if _is_duplicate(status, data):
        return DuplicateRejected(text, platform=_PLATFORM, status=status, code=code)
    return by_status(answer, text, platform=_PLATFORM, code=code)


class LinkedInConnector(HttpConnector[LinkedInSettings]):
    platform = Platform.LINKEDIN
    classify = staticmethod(classify)

    def usage_of(self, content: Content) -> Mapping[str, int]:
        return {"posts": 1}

    def lookup_usage(self) -> Mapping[str, int]:
        return {}

    def _refusal(self, resp: HttpResponse, *, creates_post: bool = False) -> PlatformError:
        """The Herald error of an error answer; a 426 also tells the version watch that
        LinkedIn no longer serves the version Herald speaks."""
        if resp.status == 426 and self._versions is not None:
            self._versions.served(self.platform, self._settings.api_version, None)
        return self._fail(resp, creates_post=creates_post)

    def _headers(self, request: PublishRequest) -> dict[str, str]:
        return {
            **bearer(request.credentials, _PLATFORM),
            LinkedInHeader.VERSION: self._settings.api_version,
            LinkedInHeader.RESTLI_PROTOCOL: RESTLI_PROTOCOL_VERSION,
        }

    @exchange
    async def publish(self, request: PublishRequest) -> Published:
        self._ensure_valid(request.content)
        content = request.content
        body: dict[str, Any] = {
            "author": request.channel.external_id,
            "commentary": linkedin_commentary(content),
            "visibility": "PUBLIC",
            "distribution": {
                "feedDistribution": "MAIN_FEED",
                "targetEntities": [],
                "thirdPartyDistributionChannels": [],
            },
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        if content.media:
            media: dict[str, str] = {"id": await self._upload_image(request)}
            if content.media[0].alt_text:
                media["altText"] = content.media[0].alt_text
            body["content"] = {"media": media}
        elif content.link:
            body["content"] = {
                "article": {"source": content.link, "title": content.title or content.link}
            }
        resp = await self._http.request(
            "POST",
            f"{self._settings.base_url}{LinkedInPath.POSTS}",
            creates_post=True,
            headers=self._headers(request),
            json=body,
        )
        if not resp.ok:
            raise self._refusal(resp, creates_post=True)
        urn = header(resp.headers, LinkedInHeader.RESTLI_ID)
        if not urn:
            raise OutcomeUnknown(
                f"{_PLATFORM}: post answered without {LinkedInHeader.RESTLI_ID}",
                platform=_PLATFORM,
                status=resp.status,
            )
        return Published(urn, url=f"https://www.linkedin.com/feed/update/{urn}")

    async def _upload_image(self, request: PublishRequest) -> str:
        """Upload the post's image; return its ``urn:li:image:...``. Creates no post.

        The image is opened first (refused there if over ``max_media_bytes``), then streamed
        from its URL into the upload URL's ``PUT``: with its length when the source declared
        one, else chunked. Nothing of it is held beyond the piece in transit."""
        url = request.content.media[0].url
        async with self._http.open_media(url, max_bytes=self._settings.max_media_bytes) as image:
            upload_url, urn = await self._initialize_upload(request)
            headers = {**self._headers(request), "Content-Type": "application/octet-stream"}
            if image.size is not None:
                headers["Content-Length"] = str(image.size)
            put = await self._http.request("PUT", upload_url, data=image.pieces(), headers=headers)
        if not put.ok:
            raise self._refusal(put)
        return urn

    async def _initialize_upload(self, request: PublishRequest) -> tuple[str, str]:
        """``initializeUpload``: the URL to ``PUT`` the image to, and the image's URN."""
        resp = await self._http.request(
            "POST",
            f"{self._settings.base_url}{LinkedInPath.IMAGES}",
            params={"action": "initializeUpload"},
            headers=self._headers(request),
            json={"initializeUploadRequest": {"owner": request.channel.external_id}},
        )
        if not resp.ok:
            raise self._refusal(resp)
        data = resp.json()
        value = data.get("value") if isinstance(data, Mapping) else None
        upload_url = value.get("uploadUrl") if isinstance(value, Mapping) else None
        urn = value.get("image") if isinstance(value, Mapping) else None
        if not isinstance(upload_url, str) or not isinstance(urn, str):
            raise TransientPlatformError(
                f"{_PLATFORM}: initializeUpload answered without uploadUrl/image",
                platform=_PLATFORM,
                status=resp.status,
            )
        return upload_url, urn

    @exchange
    async def find(self, request: PublishRequest) -> Published | None:
        text = linkedin_commentary(request.content)
        require_text(text, _PLATFORM)
        author = quote(request.channel.external_id, safe="")
        headers = self._headers(request)

        async def fetch(start: int | None) -> Page[int]:
            offset = start or 0
            url = URL(
                f"{self._settings.base_url}{LinkedInPath.POSTS}?q=author&author={author}"
                f"&count={PAGE_COUNT}&start={offset}&sortBy=LAST_MODIFIED",
                encoded=True,
            )
            resp = await self._http.request("GET", url, headers=headers)
            if not resp.ok:
                raise self._refusal(resp)
            return _page(resp.json(), offset)

        found = await scan(fetch, text, request.since, _PLATFORM)
        if found is None:
            return None
        return Published(found, url=f"https://www.linkedin.com/feed/update/{found}")


def _page(data: object, start: int) -> Page[int]:
    """One page of the author's posts; the next page starts where this one ended.

    The listing is sorted by last modification, so only ``lastModifiedAt`` can prove that
    the rest is older than the window (a post edited today may have been created last year,
    but nothing modified before the window was created in it).
    """
    body: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
    items = body.get("elements")
    elements = [e for e in items if isinstance(e, Mapping)] if isinstance(items, list) else []
    paging = body.get("paging")
    following = start + len(elements)
    last = _last_page(len(elements), following, paging if isinstance(paging, Mapping) else {})
    return Page(
        _candidates(elements),
        oldest(from_epoch_ms(e.get("lastModifiedAt")) for e in elements),
        None if last else following,
    )


def _last_page(size: int, following: int, paging: Mapping[str, Any]) -> bool:
    """Empty, shorter than the page size LinkedIn answered with, or at ``paging.total``."""
    if size == 0:
        return True
    count, total = paging.get("count"), paging.get("total")
    per_page = count if isinstance(count, int) and count > 0 else PAGE_COUNT
    if size < per_page:
        return True
    return isinstance(total, int) and following >= total


def _candidates(items: list[Mapping[str, Any]]) -> list[Candidate]:
    return [
        Candidate(
            str(item["id"]), str(item.get("commentary") or ""), from_epoch_ms(item.get("createdAt"))
        )
        for item in items
        if item.get("id") is not None
    ]
