"""LinkedIn connector (Posts API): text, article link, or one image.

``commentary`` is LinkedIn "little text": reserved characters are backslash-escaped so the
text arrives as written, and look-ups compare against that escaped text. An image is
uploaded first (``initializeUpload``, then a ``PUT`` of the bytes downloaded from the media
URL); only the final ``POST /rest/posts`` can create a post. LinkedIn sends no rate-limit
headers: its daily limits reset at 00:00 UTC, and the 429 body says which one was hit.
LinkedIn refuses the same commentary twice from one author (422, "Content is a duplicate of
urn:li:share:..."): that is :class:`DuplicateRejected`. Look-ups page through the author's
posts, 100 at a time, by ``start`` offset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from yarl import URL

from herald.config import LinkedInSettings
from herald.domain import Content, MediaKind, Platform, utcnow
from herald.errors import (
    AuthExpired,
    ContentInvalid,
    ContentRejected,
    DuplicateRejected,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    TransientPlatformError,
)
from herald.platforms.content import ensure_valid, with_link
from herald.platforms.http import HttpClient, HttpResponse, bearer, header, json_body, retry_after_s
from herald.platforms.lookup import Candidate, Page, from_epoch_ms, oldest, require_text, scan
from herald.types import Published, PublishRequest

__all__ = [
    "MAX_COMMENTARY_CHARS",
    "PAGE_COUNT",
    "LinkedInConnector",
    "classify",
    "commentary_of",
    "escape_little_text",
    "validate",
]

_PLATFORM = Platform.LINKEDIN.value
MAX_COMMENTARY_CHARS = 3000
RESERVED = frozenset("\\|{}@[]()<>#*_~")
RESTLI_PROTOCOL = "2.0.0"
#: Posts per listing page a look-up asks for: the finder's maximum ``count``.
PAGE_COUNT = 100
DUPLICATE_STATUS = 422
_DUPLICATE_MESSAGE = re.compile(r"\bduplicate of urn:li:", re.IGNORECASE)
_DUPLICATE_CODE = "DUPLICATE_POST"


def escape_little_text(text: str) -> str:
    return "".join(f"\\{ch}" if ch in RESERVED else ch for ch in text)


def commentary_of(content: Content) -> str:
    """The escaped commentary as sent: an image post carries the link in its text."""
    text = with_link(content.text, content.link) if content.media else content.text
    return escape_little_text(text)


def validate(content: Content) -> None:
    if any(m.kind is MediaKind.VIDEO for m in content.media):
        raise ContentInvalid("LinkedIn video posts are not supported yet", field="media")
    if len(content.media) > 1:
        raise ContentInvalid(
            f"LinkedIn posts take at most one image, got {len(content.media)}", field="media"
        )
    if not (content.text.strip() or content.link or content.media):
        raise ContentInvalid("a LinkedIn post needs text, a link or an image", field="text")
    size = len(commentary_of(content))
    if size > MAX_COMMENTARY_CHARS:
        raise ContentInvalid(
            f"LinkedIn commentary is {size} characters once reserved characters are escaped; "
            f"the limit is {MAX_COMMENTARY_CHARS}",
            field="text",
        )


def _next_utc_midnight(now: datetime) -> float:
    today = now.astimezone(UTC).date()
    midnight = datetime(today.year, today.month, today.day, tzinfo=UTC) + timedelta(days=1)
    return (midnight - now).total_seconds()


def _throttle(message: str, explicit: float | None, now: datetime, pause_s: float) -> RateLimited:
    kw: dict[str, Any] = {"platform": _PLATFORM, "status": 429}
    upper = message.upper()
    if "MEMBER DAY" in upper:
        wait = _next_utc_midnight(now) if explicit is None else explicit
        return RateLimited(f"{_PLATFORM}: {message}", retry_after=wait, scope="channel", **kw)
    if "APPLICATION DAY" in upper:
        wait = _next_utc_midnight(now) if explicit is None else explicit
        return RateLimited(f"{_PLATFORM}: {message}", retry_after=wait, scope="app", **kw)
    # A short protective throttle: LinkedIn says neither why nor for how long.
    wait = pause_s if explicit is None else explicit
    return RateLimited(f"{_PLATFORM}: {message}", retry_after=wait, scope="app", **kw)


def _is_duplicate(status: int, data: Mapping[str, Any]) -> bool:
    """A 422 that says the commentary repeats an existing post (message or input error)."""
    if status != DUPLICATE_STATUS:
        return False
    if _DUPLICATE_MESSAGE.search(str(data.get("message") or "")):
        return True
    details = data.get("errorDetails")
    errors = details.get("inputErrors") if isinstance(details, Mapping) else None
    return isinstance(errors, list) and any(
        isinstance(e, Mapping) and e.get("code") == _DUPLICATE_CODE for e in errors
    )


def classify(
    status: int,
    headers: Mapping[str, str],
    body: bytes | Mapping[str, Any] | None,
    *,
    now: datetime,
    pause_s: float,
    creates_post: bool = False,
) -> PlatformError:
    """The LinkedIn table of docs/platforms.md: one error answer -> one Herald error."""
    data = json_body(body)
    data = data if isinstance(data, Mapping) else {}
    message = str(data.get("message") or f"HTTP {status}")[:300]
    raw_code = data.get("serviceErrorCode", data.get("code"))
    kw: dict[str, Any] = {
        "platform": _PLATFORM,
        "status": status,
        "code": None if raw_code is None else str(raw_code),
    }
    explicit = retry_after_s(status, headers, now)
    text = f"{_PLATFORM}: {message}"
    if status == 429:
        return _throttle(message, explicit, now, pause_s)
    if status in (401, 403):
        return AuthExpired(text, **kw)
    if status == 426:
        return ContentRejected(f"{text} (update linkedin.api_version)", **kw)
    if _is_duplicate(status, data):
        return DuplicateRejected(text, **kw)
    if 400 <= status < 500:
        return ContentRejected(text, **kw)
    if creates_post:
        return OutcomeUnknown(text, **kw)
    if explicit is not None:
        return RateLimited(text, retry_after=explicit, scope="app", **kw)
    return TransientPlatformError(text, **kw)


class LinkedInConnector:
    platform = Platform.LINKEDIN

    def __init__(
        self,
        settings: LinkedInSettings,
        *,
        throttle_pause_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._pause_s = throttle_pause_s
        self._clock = clock
        self._http = HttpClient(_PLATFORM, settings)

    def usage_of(self, content: Content) -> Mapping[str, int]:
        return {"posts": 1}

    def lookup_usage(self) -> Mapping[str, int]:
        return {}

    def validate(self, content: Content) -> None:
        validate(content)

    def _headers(self, request: PublishRequest) -> dict[str, str]:
        return {
            **bearer(request.credentials, _PLATFORM),
            "LinkedIn-Version": self._settings.api_version,
            "X-Restli-Protocol-Version": RESTLI_PROTOCOL,
        }

    def _fail(self, resp: HttpResponse, *, creates_post: bool = False) -> PlatformError:
        return classify(
            resp.status,
            resp.headers,
            resp.body,
            now=self._clock(),
            pause_s=self._pause_s,
            creates_post=creates_post,
        )

    async def publish(self, request: PublishRequest) -> Published:
        ensure_valid(validate, request.content, _PLATFORM)
        content = request.content
        body: dict[str, Any] = {
            "author": request.channel.external_id,
            "commentary": commentary_of(content),
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
            f"{self._settings.base_url}/rest/posts",
            creates_post=True,
            headers=self._headers(request),
            json=body,
        )
        if not resp.ok:
            raise self._fail(resp, creates_post=True)
        urn = header(resp.headers, "x-restli-id")
        if not urn:
            raise OutcomeUnknown(
                f"{_PLATFORM}: post answered without x-restli-id",
                platform=_PLATFORM,
                status=resp.status,
            )
        return Published(urn, url=f"https://www.linkedin.com/feed/update/{urn}")

    async def _upload_image(self, request: PublishRequest) -> str:
        """Upload the post's image; return its ``urn:li:image:...``. Creates no post."""
        image = await self._http.fetch_media(request.content.media[0].url)
        resp = await self._http.request(
            "POST",
            f"{self._settings.base_url}/rest/images",
            params={"action": "initializeUpload"},
            headers=self._headers(request),
            json={"initializeUploadRequest": {"owner": request.channel.external_id}},
        )
        if not resp.ok:
            raise self._fail(resp)
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
        put = await self._http.request(
            "PUT",
            upload_url,
            data=image,
            headers={**self._headers(request), "Content-Type": "application/octet-stream"},
        )
        if not put.ok:
            raise self._fail(put)
        return urn

    async def find(self, request: PublishRequest) -> Published | None:
        text = commentary_of(request.content)
        require_text(text, _PLATFORM)
        author = quote(request.channel.external_id, safe="")
        headers = self._headers(request)

        async def fetch(start: int | None) -> Page[int]:
            offset = start or 0
            url = URL(
                f"{self._settings.base_url}/rest/posts?q=author&author={author}"
                f"&count={PAGE_COUNT}&start={offset}&sortBy=LAST_MODIFIED",
                encoded=True,
            )
            resp = await self._http.request("GET", url, headers=headers)
            if not resp.ok:
                raise self._fail(resp)
            return _page(resp.json(), offset)

        found = await scan(fetch, text, request.since, _PLATFORM)
        if found is None:
            return None
        return Published(found, url=f"https://www.linkedin.com/feed/update/{found}")

    async def aclose(self) -> None:
        await self._http.aclose()


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
