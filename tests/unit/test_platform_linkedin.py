"""LinkedIn connector: classification, little-text escaping, validation and the flows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from herald.config import LinkedInSettings
from herald.domain import Content, Media, MediaKind, Platform
from herald.egress.policy import EgressPolicy
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
from herald.platforms.answers import ErrorAnswer
from herald.platforms.linkedin import LinkedInConnector, classify
from herald.platforms.rules import escape_little_text, linkedin_commentary, validate_linkedin
from herald.types import PublishRequest
from tests.unit.test_platform_fakes import (
    NOW,
    FakeApi,
    Reply,
    Seen,
    drop,
    make_request,
    reply,
)

PAUSE = 60.0
URN = "urn:li:person:abc"
TO_MIDNIGHT = 7 * 3600.0  # NOW is 17:00 UTC


def run(
    status: int,
    body: object = None,
    headers: dict[str, str] | None = None,
    *,
    creates_post: bool = False,
) -> PlatformError:
    raw = json.dumps(body).encode() if body is not None else b""
    answer = ErrorAnswer(
        status, headers or {}, raw, now=NOW, pause_s=PAUSE, creates_post=creates_post
    )
    return classify(answer)


def throttle(kind: str) -> dict[str, object]:
    return {
        "message": f"Resource level throttle {kind} limit for calls to this resource is reached.",
        "status": 429,
    }


@pytest.mark.parametrize(
    ("body", "headers", "scope", "wait"),
    [
        (throttle("MEMBER DAY"), {}, "channel", TO_MIDNIGHT),
        (throttle("APPLICATION DAY"), {}, "app", TO_MIDNIGHT),
        ({"message": "Too many requests", "status": 429}, {}, "app", PAUSE),
        (None, {}, "app", PAUSE),
        (None, {"Retry-After": "12"}, "app", 12.0),
        (throttle("MEMBER DAY"), {"Retry-After": "90"}, "channel", 90.0),
    ],
)
def test_throttling(body: object, headers: dict[str, str], scope: str, wait: float) -> None:
    err = run(429, body, headers, creates_post=True)
    assert isinstance(err, RateLimited)
    assert (err.scope, err.retry_after) == (scope, wait)
    assert err.named is (wait != PAUSE)  # without a wait, the engine makes its pause grow


def test_daily_limit_resets_at_utc_midnight_from_any_hour() -> None:
    late = datetime(2026, 3, 8, 23, 59, 30, tzinfo=UTC)
    body = json.dumps(throttle("MEMBER DAY")).encode()
    err = classify(ErrorAnswer(429, {}, body, now=late, pause_s=PAUSE))
    assert isinstance(err, RateLimited)
    assert err.retry_after == 30.0


@pytest.mark.parametrize(
    ("status", "body", "creates_post", "expected"),
    [
        (
            401,
            {"status": 401, "serviceErrorCode": 65600, "code": "INVALID_ACCESS_TOKEN"},
            False,
            AuthExpired,
        ),
        (
            401,
            {"status": 401, "serviceErrorCode": 65601, "code": "REVOKED_ACCESS_TOKEN"},
            True,
            AuthExpired,
        ),
        (403, {"serviceErrorCode": 100, "message": "Not enough permissions"}, False, AuthExpired),
        (400, {"message": "bad"}, True, ContentRejected),
        (422, {"message": "Content is a duplicate of urn:li:share:1"}, True, DuplicateRejected),
        (422, {"message": "ERROR :: /commentary :: too long"}, True, ContentRejected),
        (426, {"message": "version sunset"}, True, RateLimited),  # pauses the app
        (500, None, False, TransientPlatformError),
        (503, None, False, TransientPlatformError),
        (500, None, True, OutcomeUnknown),
        (502, {"message": "bad gateway"}, True, OutcomeUnknown),
    ],
)
def test_classification(status: int, body: object, creates_post: bool, expected: type) -> None:
    assert type(run(status, body, creates_post=creates_post)) is expected


# LinkedIn's own body for a repeated commentary (a 422 from the Posts API).
DUPLICATE_BODY = {
    "errorDetailType": "com.linkedin.common.error.BadRequest",
    "message": "com.linkedin.content.common.exception.BadRequestResponseException: "
    "Content is a duplicate of urn:li:share:7141138937766391808",
    "errorDetails": {
        "inputErrors": [
            {"description": "Duplicate post is detected", "input": {}, "code": "DUPLICATE_POST"}
        ]
    },
    "status": 422,
}


@pytest.mark.parametrize(
    ("status", "body", "duplicate"),
    [
        (422, DUPLICATE_BODY, True),
        (422, {"message": "content is a DUPLICATE of urn:li:ugcPost:9"}, True),
        (
            422,
            {
                "message": "Unprocessable",
                "errorDetails": {"inputErrors": [{"code": "DUPLICATE_POST"}]},
            },
            True,
        ),
        (422, {"message": "ERROR :: /content/article/source :: a URL is required"}, False),
        (400, {"message": "Content is a duplicate of urn:li:share:1"}, False),
    ],
)
def test_duplicate_refusal(status: int, body: object, duplicate: bool) -> None:
    for creates_post in (False, True):
        err = run(status, body, creates_post=creates_post)
        assert isinstance(err, ContentRejected)
        assert isinstance(err, DuplicateRejected) is duplicate


def test_duplicate_refusal_names_the_existing_post() -> None:
    assert "urn:li:share:7141138937766391808" in str(run(422, DUPLICATE_BODY))


def test_classification_keeps_the_service_code() -> None:
    err = run(401, {"status": 401, "serviceErrorCode": 65600, "message": "Invalid access token"})
    assert err.code == "65600"
    assert "Invalid access token" in str(err)
    assert "api_version" in str(run(426, {"message": "sunset"}))


def test_escaping() -> None:
    reserved = "\\|{}@[]()<>#*_~"
    assert escape_little_text(reserved) == "".join(f"\\{c}" for c in reserved)
    assert escape_little_text("Hi (all) #launch @Ann_B") == "Hi \\(all\\) \\#launch \\@Ann\\_B"
    assert escape_little_text("plain, text. ok!") == "plain, text. ok!"


def test_commentary_carries_the_link_only_on_image_posts() -> None:
    image = Media("https://cdn.example/a.jpg", MediaKind.IMAGE)
    assert linkedin_commentary(Content(text="a", link="https://x.io/a_b")) == "a"
    assert linkedin_commentary(Content(text="a", link="https://x.io/a_b", media=(image,))) == (
        "a\n\nhttps://x.io/a\\_b"
    )


IMAGE = Media("https://cdn.example/a.jpg", MediaKind.IMAGE, alt_text="a cat")
VIDEO = Media("https://cdn.example/v.mp4", MediaKind.VIDEO)


@pytest.mark.parametrize(
    ("content", "field", "words"),
    [
        (Content(text="x", media=(VIDEO,)), "media", "video"),
        (Content(text="x", media=(IMAGE, IMAGE)), "media", "at most one image"),
        (Content(), "text", "needs text"),
        (Content(text="x" * 3001), "text", "3000"),
        (Content(text="#" * 1501), "text", "escaped"),  # 3,002 characters once escaped
    ],
)
def test_validate_refuses(content: Content, field: str, words: str) -> None:
    with pytest.raises(ContentInvalid, match=words) as info:
        validate_linkedin(content)
    assert info.value.field == field


def test_validate_and_usage() -> None:
    validate_linkedin(Content(text="x" * 3000))
    validate_linkedin(Content(link="https://example.com"))
    validate_linkedin(Content(media=(IMAGE,)))
    li = LinkedInConnector(LinkedInSettings(), throttle_pause_s=PAUSE)
    assert li.usage_of(Content(text="x", media=(IMAGE,))) == {"posts": 1}
    assert li.lookup_usage() == {}


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi() as fake:
        yield fake


@pytest.fixture
async def li(api: FakeApi) -> AsyncIterator[LinkedInConnector]:
    conn = LinkedInConnector(
        LinkedInSettings(base_url=api.url, api_version="202510"),
        throttle_pause_s=PAUSE,
        clock=lambda: NOW,
        egress=EgressPolicy.allowing("127.0.0.1/32"),  # its media is on the fake, on loopback
    )
    yield conn
    await conn.aclose()


def req(content: Content) -> PublishRequest:
    return make_request(Platform.LINKEDIN, content, external_id=URN)


def assert_linkedin_headers(seen: Seen) -> None:
    assert seen.headers["Authorization"] == "Bearer SECRET-TOKEN"
    assert seen.headers["LinkedIn-Version"] == "202510"
    assert seen.headers["X-Restli-Protocol-Version"] == "2.0.0"


async def test_article_post(api: FakeApi, li: LinkedInConnector) -> None:
    api.on("POST", "/rest/posts", reply(201, b"", {"x-restli-id": "urn:li:share:7"}))
    published = await li.publish(req(Content(text="Read (this)", link="https://x.io")))
    assert published.external_id == "urn:li:share:7"
    (seen,) = api.seen
    assert_linkedin_headers(seen)
    assert seen.json() == {
        "author": URN,
        "commentary": "Read \\(this\\)",
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
        "content": {"article": {"source": "https://x.io", "title": "https://x.io"}},
    }


async def test_image_post_uploads_the_downloaded_bytes(api: FakeApi, li: LinkedInConnector) -> None:
    image = Media(f"{api.url}/media/a.jpg", MediaKind.IMAGE, alt_text="a cat")
    api.on("GET", "/media/a.jpg", reply(200, b"JPEGBYTES"))
    api.on(
        "POST",
        "/rest/images",
        reply(
            200,
            {
                "value": {
                    "uploadUrl": f"{api.url}/upload/1",
                    "image": "urn:li:image:1",
                    "uploadUrlExpiresAt": 1,
                }
            },
        ),
    )
    api.on("PUT", "/upload/1", reply(201, b""))
    api.on("POST", "/rest/posts", reply(201, b"", {"x-restli-id": "urn:li:share:8"}))
    published = await li.publish(req(Content(text="pic", media=(image,))))
    assert published.external_id == "urn:li:share:8"
    assert "Authorization" not in api.calls("GET", "/media/a.jpg")[0].headers
    init = api.calls("POST", "/rest/images")[0]
    assert init.query == {"action": "initializeUpload"}
    assert init.json() == {"initializeUploadRequest": {"owner": URN}}
    assert api.calls("PUT", "/upload/1")[0].body == b"JPEGBYTES"
    body = api.calls("POST", "/rest/posts")[0].json()
    assert body["content"] == {"media": {"id": "urn:li:image:1", "altText": "a cat"}}


def image_flow(api: FakeApi, source: Reply) -> Content:
    api.on("GET", "/media/a.jpg", source)
    init = {"value": {"uploadUrl": f"{api.url}/upload/1", "image": "urn:li:image:1"}}
    api.on("POST", "/rest/images", reply(200, init))
    api.on("PUT", "/upload/1", reply(201, b""))
    api.on("POST", "/rest/posts", reply(201, b"", {"x-restli-id": "urn:li:share:8"}))
    return Content(text="pic", media=(Media(f"{api.url}/media/a.jpg", MediaKind.IMAGE),))


def chunked_body(body: bytes, *, repeat: int = 1) -> Reply:
    """``body``, ``repeat`` times, sent chunked: the source declares no length."""

    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(repeat):
            await response.write(body)
        await response.write_eof()
        return response

    return respond


async def test_the_image_is_streamed_with_its_length_when_known(
    api: FakeApi, li: LinkedInConnector
) -> None:
    image = bytes(range(256)) * 4000
    await li.publish(req(image_flow(api, reply(200, image))))
    (put,) = api.calls("PUT", "/upload/1")
    assert put.body == image
    assert put.headers["Content-Length"] == str(len(image))
    assert "Transfer-Encoding" not in put.headers


async def test_an_image_without_length_is_streamed_chunked(
    api: FakeApi, li: LinkedInConnector
) -> None:
    image = bytes(range(256)) * 4000
    await li.publish(req(image_flow(api, chunked_body(image))))
    (put,) = api.calls("PUT", "/upload/1")
    assert put.body == image
    assert put.headers["Transfer-Encoding"] == "chunked"


async def test_an_image_over_the_cap_is_refused_mid_stream_and_posts_nothing(
    api: FakeApi,
) -> None:
    settings = LinkedInSettings(base_url=api.url, max_media_bytes=1024 * 1024)
    loopback = EgressPolicy.allowing("127.0.0.1/32")
    li = LinkedInConnector(settings, throttle_pause_s=PAUSE, clock=lambda: NOW, egress=loopback)
    content = image_flow(api, chunked_body(b"x" * 65536, repeat=64))  # 4 MiB, no length
    try:
        with pytest.raises(ContentRejected) as refused:
            await li.publish(req(content))
    finally:
        await li.aclose()
    assert refused.value.message == "linkedin: media too large: over 1 MiB"
    assert not api.calls("POST", "/rest/posts")


async def test_an_image_declared_over_the_cap_is_refused_before_any_request(
    api: FakeApi,
) -> None:
    settings = LinkedInSettings(base_url=api.url, max_media_bytes=1000)
    loopback = EgressPolicy.allowing("127.0.0.1/32")
    li = LinkedInConnector(settings, throttle_pause_s=PAUSE, clock=lambda: NOW, egress=loopback)
    content = image_flow(api, reply(200, b"j" * 5000))
    try:
        with pytest.raises(ContentRejected) as refused:
            await li.publish(req(content))
    finally:
        await li.aclose()
    assert (
        refused.value.message
        == "linkedin: media too large: over 1,000 bytes (5,000 bytes declared)"
    )
    assert [s.path for s in api.seen] == ["/media/a.jpg"]


async def test_post_failures(api: FakeApi, li: LinkedInConnector) -> None:
    api.on("POST", "/rest/posts", reply(500, b""))
    with pytest.raises(OutcomeUnknown):
        await li.publish(req(Content(text="x")))
    api.on("POST", "/rest/posts", drop())
    with pytest.raises(OutcomeUnknown):
        await li.publish(req(Content(text="x")))
    api.on("POST", "/rest/posts", reply(201, b""))  # committed, but which post is it?
    with pytest.raises(OutcomeUnknown):
        await li.publish(req(Content(text="x")))
    api.on("POST", "/rest/posts", reply(429, throttle("MEMBER DAY")))
    with pytest.raises(RateLimited) as info:
        await li.publish(req(Content(text="x")))
    assert info.value.scope == "channel"


async def test_image_upload_failure_is_not_unknown(api: FakeApi, li: LinkedInConnector) -> None:
    api.on("GET", "/media/a.jpg", reply(200, b"JPEG"))
    api.on("POST", "/rest/images", reply(500, b""))
    with pytest.raises(TransientPlatformError) as info:
        await li.publish(req(Content(media=(Media(f"{api.url}/media/a.jpg", MediaKind.IMAGE),))))
    assert not isinstance(info.value, OutcomeUnknown)
    assert not api.calls("POST", "/rest/posts")


async def test_find_compares_the_escaped_commentary(api: FakeApi, li: LinkedInConnector) -> None:
    ms = int((NOW - timedelta(minutes=3)).timestamp() * 1000)
    old = int((NOW - timedelta(minutes=10)).timestamp() * 1000)
    api.on(
        "GET",
        "/rest/posts",
        reply(
            200,
            {
                "elements": [
                    {
                        "id": "urn:li:share:3",
                        "author": URN,
                        "commentary": "Hi \\#all",
                        "createdAt": old,
                        "lifecycleState": "PUBLISHED",
                    },
                    {
                        "id": "urn:li:share:2",
                        "author": URN,
                        "commentary": "Hi \\#all",
                        "createdAt": ms,
                        "lifecycleState": "PUBLISHED",
                    },
                    {
                        "id": "urn:li:share:1",
                        "author": URN,
                        "commentary": "Hi #all",
                        "createdAt": ms,
                        "lifecycleState": "PUBLISHED",
                    },
                ],
                "paging": {"start": 0, "count": 20},
            },
        ),
    )
    found = await li.find(req(Content(text="Hi  #all")))
    assert found is not None
    assert found.external_id == "urn:li:share:2"
    seen = api.seen[0]
    assert seen.raw_query == (
        "q=author&author=urn%3Ali%3Aperson%3Aabc&count=100&start=0&sortBy=LAST_MODIFIED"
    )
    assert_linkedin_headers(seen)
    assert await li.find(req(Content(text="nothing like it"))) is None


def element(
    n: int, *, created: timedelta, modified: timedelta, text: str = ""
) -> dict[str, object]:
    return {
        "id": f"urn:li:share:{n}",
        "author": URN,
        "commentary": text or f"post {n}",
        "createdAt": int((NOW + created).timestamp() * 1000),
        "lastModifiedAt": int((NOW + modified).timestamp() * 1000),
        "lifecycleState": "PUBLISHED",
    }


def by_start(pages: dict[int, list[dict[str, object]]], total: int | None) -> Reply:
    """Answer the finder like LinkedIn: the page at ``start``, with ``count`` and ``total``."""

    async def respond(request: web.Request) -> web.StreamResponse:
        start, count = int(request.query["start"]), int(request.query["count"])
        paging: dict[str, object] = {"start": start, "count": count}
        if total is not None:
            paging["total"] = total
        return web.json_response({"elements": pages.get(start, []), "paging": paging})

    return respond


RECENT = timedelta(minutes=-1)


async def test_find_pages_by_start_until_a_short_page(api: FakeApi, li: LinkedInConnector) -> None:
    first = [element(n, created=RECENT, modified=RECENT) for n in range(100)]
    second = [element(n, created=RECENT, modified=RECENT) for n in range(100, 130)]
    api.on("GET", "/rest/posts", by_start({0: first, 100: second}, total=None))
    found = await li.find(req(Content(text="post 129")))
    assert found is not None
    assert found.external_id == "urn:li:share:129"
    assert [s.query["start"] for s in api.seen] == ["0", "100"]
    api.seen.clear()
    assert await li.find(req(Content(text="absent"))) is None
    assert [s.query["start"] for s in api.seen] == ["0", "100"]  # page 2 is short: the end


async def test_find_stops_at_the_total(api: FakeApi, li: LinkedInConnector) -> None:
    full = [element(n, created=RECENT, modified=RECENT) for n in range(100)]
    api.on("GET", "/rest/posts", by_start({0: full}, total=100))
    assert await li.find(req(Content(text="absent"))) is None
    assert len(api.seen) == 1


async def test_find_stops_by_last_modification_not_by_creation(
    api: FakeApi, li: LinkedInConnector
) -> None:
    # Sorted by LAST_MODIFIED: an old post edited a minute ago proves nothing about the
    # pages after it; a post last modified before the window does.
    edited = [element(n, created=timedelta(days=-30), modified=RECENT) for n in range(100)]
    stale = [element(n, created=RECENT, modified=RECENT) for n in range(100, 199)]
    stale.append(element(199, created=timedelta(days=-2), modified=timedelta(minutes=-6)))
    api.on("GET", "/rest/posts", by_start({0: edited, 100: stale}, total=None))
    assert await li.find(req(Content(text="absent"))) is None
    assert [s.query["start"] for s in api.seen] == ["0", "100"]  # page 3 is never asked for
