"""Facebook Pages connector: the classification table, usage headers, validation, the flows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import parse_qs

import pytest

from herald.config import FacebookSettings
from herald.domain import Content, Media, MediaKind, Platform
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
from herald.platforms.facebook import FacebookConnector, classify
from herald.platforms.graph import merge_usage, parse_usage
from herald.platforms.rules import validate_facebook
from herald.types import PlatformUsage
from tests.unit.test_platform_fakes import NOW, FakeApi, drop, make_request, reply

PAUSE = 60.0
IMAGE = Media("https://cdn.example/a.jpg", MediaKind.IMAGE)
IMAGE2 = Media("https://cdn.example/b.jpg", MediaKind.IMAGE)
VIDEO = Media("https://cdn.example/v.mp4", MediaKind.VIDEO)


def graph_error(code: int, subcode: int | None = None, **extra: object) -> dict[str, object]:
    err: dict[str, object] = {
        "message": f"(#{code}) boom",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbC",
        **extra,
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    return {"error": err}


def run(
    status: int,
    body: object,
    headers: dict[str, str] | None = None,
    *,
    creates_post: bool = False,
) -> PlatformError:
    raw = json.dumps(body).encode() if body is not None else b""
    answer = ErrorAnswer(
        status,
        headers or {},
        raw,
        now=NOW,
        pause_s=PAUSE,
        channel_id="123",
        creates_post=creates_post,
    )
    return classify(answer)


@pytest.mark.parametrize(
    ("code", "scope"),
    [(4, "app"), (17, "app"), (341, "app"), (32, "channel"), (613, "channel"), (80001, "channel")],
)
def test_limit_codes(code: int, scope: str) -> None:
    err = run(400, graph_error(code, is_transient=True))
    assert isinstance(err, RateLimited)
    assert err.scope == scope
    assert err.retry_after == PAUSE  # no usage header: the configured pause
    assert not err.named  # which the engine lengthens while the throttling lasts


def test_policy_block_waits_an_hour() -> None:
    err = run(400, graph_error(368))
    assert isinstance(err, RateLimited)
    assert (err.scope, err.retry_after, err.named) == ("channel", 3600.0, True)


@pytest.mark.parametrize("code", [190, 102, 10, 200, 250, 299])
def test_auth_codes(code: int) -> None:
    assert isinstance(run(400, graph_error(code, 463)), AuthExpired)


@pytest.mark.parametrize(("code", "status"), [(1, 500), (2, 500), (100, 400)])
def test_transient_codes(code: int, status: int) -> None:
    body = graph_error(code, is_transient=True) if code == 100 else graph_error(code)
    assert type(run(status, body)) is TransientPlatformError


@pytest.mark.parametrize(("code", "status"), [(1, 500), (2, 500), (100, 400)])
def test_a_transient_answer_to_the_publish_call_is_an_unknown_outcome(
    code: int, status: int
) -> None:
    # Graph may commit the post and still answer code 1 or 2: look it up before resending.
    body = graph_error(code, is_transient=True) if code == 100 else graph_error(code)
    assert type(run(status, body, creates_post=True)) is OutcomeUnknown


@pytest.mark.parametrize("code", [100, 506, 1609005, 12345])
def test_rejected_codes(code: int) -> None:
    err = run(400, graph_error(code))
    assert isinstance(err, ContentRejected)
    assert err.code == str(code)


@pytest.mark.parametrize("creates_post", [False, True])
def test_506_is_a_duplicate_refusal(creates_post: bool) -> None:
    # docs/platforms.md: after an earlier send, the engine looks the post up instead of
    # failing the delivery; only 506 says "this post already exists".
    err = run(400, graph_error(506), creates_post=creates_post)
    assert type(err) is DuplicateRejected
    assert err.code == "506"
    assert not isinstance(run(400, graph_error(100)), DuplicateRejected)
    assert not isinstance(run(400, graph_error(1609005)), DuplicateRejected)


def buc(minutes: int, pct: int = 100) -> dict[str, str]:
    usage = {
        "123": [
            {
                "type": "pages",
                "call_count": pct,
                "total_cputime": 5,
                "total_time": 7,
                "estimated_time_to_regain_access": minutes,
            }
        ]
    }
    return {"X-Business-Use-Case-Usage": json.dumps(usage)}


@pytest.mark.parametrize(("minutes", "wait"), [(3, 180.0), (0, PAUSE)])
def test_throttle_wait_comes_from_regain_estimate(minutes: int, wait: float) -> None:
    err = run(400, graph_error(32), buc(minutes))
    assert isinstance(err, RateLimited)
    assert err.retry_after == wait
    assert err.named is (minutes > 0)


@pytest.mark.parametrize(
    ("status", "creates_post", "headers", "expected"),
    [
        (500, True, {}, OutcomeUnknown),  # 5xx, no body, on the final publish call
        (502, False, {}, TransientPlatformError),
        (429, True, {}, RateLimited),
        (401, False, {}, AuthExpired),
        (404, False, {}, ContentRejected),
    ],
)
def test_answers_without_envelope(
    status: int, creates_post: bool, headers: dict[str, str], expected: type
) -> None:
    assert type(run(status, None, headers, creates_post=creates_post)) is expected


def test_503_with_retry_after_pauses_the_app_unless_a_post_may_exist() -> None:
    err = run(503, None, {"Retry-After": "30"})
    assert isinstance(err, RateLimited)
    assert (err.scope, err.retry_after) == ("app", 30.0)
    assert isinstance(run(503, None, {"Retry-After": "30"}, creates_post=True), OutcomeUnknown)


def test_usage_headers() -> None:
    headers = {
        "X-App-Usage": json.dumps({"call_count": 12, "total_cputime": 40, "total_time": 3}),
        **buc(2, pct=95),
    }
    assert parse_usage(headers, "123") == PlatformUsage(40.0, 95.0, 120.0)
    assert parse_usage({}, "123") is None
    other = {"X-Business-Use-Case-Usage": json.dumps({"999": [{"call_count": 50}]})}
    assert parse_usage(other, "123") == PlatformUsage(None, 50.0, None)
    assert parse_usage({"X-App-Usage": "not json"}, "123") is None
    merged = merge_usage(PlatformUsage(10.0, None, None), PlatformUsage(5.0, 80.0, 60.0))
    assert merged == PlatformUsage(10.0, 80.0, 60.0)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (Content(text="x", media=(VIDEO,)), "media"),
        (Content(), "text"),
        (Content(text="   "), "text"),
    ],
)
def test_validate_refuses(content: Content, field: str) -> None:
    with pytest.raises(ContentInvalid) as info:
        validate_facebook(content)
    assert info.value.field == field


def test_validate_accepts_text_link_or_images() -> None:
    validate_facebook(Content(text="hi"))
    validate_facebook(Content(link="https://example.com"))
    validate_facebook(Content(media=(IMAGE, IMAGE2)))


def test_usage_of() -> None:
    fb = FacebookConnector(FacebookSettings(), throttle_pause_s=PAUSE)
    assert fb.usage_of(Content(text="x")) == {"calls": 1}
    assert fb.usage_of(Content(text="x", media=(IMAGE,))) == {"calls": 1}
    assert fb.usage_of(Content(text="x", media=(IMAGE, IMAGE2, IMAGE))) == {"calls": 4}
    assert fb.lookup_usage() == {"calls": 1}


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi() as fake:
        yield fake


@pytest.fixture
async def fb(api: FakeApi) -> AsyncIterator[FacebookConnector]:
    connector = FacebookConnector(
        FacebookSettings(base_url=f"{api.url}/v23.0"), throttle_pause_s=PAUSE, clock=lambda: NOW
    )
    yield connector
    await connector.aclose()


async def test_text_and_link_post(api: FakeApi, fb: FacebookConnector) -> None:
    usage = {"X-App-Usage": json.dumps({"call_count": 100, "total_cputime": 1, "total_time": 1})}
    api.on("POST", "/v23.0/123/feed", reply(200, {"id": "123_9"}, usage))
    content = Content(text="hello", link="https://example.com")
    published = await fb.publish(make_request(Platform.FACEBOOK, content))
    assert published.external_id == "123_9"
    assert published.usage == PlatformUsage(100.0, None, None)  # the engine pauses the app
    (seen,) = api.seen
    assert seen.json() == {"message": "hello", "link": "https://example.com"}
    assert seen.headers["Authorization"] == "Bearer SECRET-TOKEN"
    assert "SECRET" not in seen.raw_query


async def test_one_photo_uses_post_id(api: FakeApi, fb: FacebookConnector) -> None:
    api.on("POST", "/v23.0/123/photos", reply(200, {"id": "777", "post_id": "123_10"}))
    content = Content(text="look", link="https://example.com", media=(IMAGE,))
    published = await fb.publish(make_request(Platform.FACEBOOK, content))
    assert published.external_id == "123_10"
    assert api.seen[0].json() == {
        "url": IMAGE.url,
        "caption": "look\n\nhttps://example.com",
        "published": True,
    }


async def test_several_photos_are_attached_to_one_feed_post(
    api: FakeApi, fb: FacebookConnector
) -> None:
    api.on("POST", "/v23.0/123/photos", reply(200, {"id": "p1"}), reply(200, {"id": "p2"}))
    api.on("POST", "/v23.0/123/feed", reply(200, {"id": "123_11"}))
    content = Content(text="album", media=(IMAGE, IMAGE2))
    published = await fb.publish(make_request(Platform.FACEBOOK, content))
    assert published.external_id == "123_11"
    assert [s.json() for s in api.calls("POST", "/v23.0/123/photos")] == [
        {"url": IMAGE.url, "published": False},
        {"url": IMAGE2.url, "published": False},
    ]
    assert api.calls("POST", "/v23.0/123/feed")[0].json() == {
        "message": "album",
        "attached_media": [{"media_fbid": "p1"}, {"media_fbid": "p2"}],
    }


async def test_drop_on_the_publishing_call_is_unknown(api: FakeApi, fb: FacebookConnector) -> None:
    api.on("POST", "/v23.0/123/feed", drop())
    with pytest.raises(OutcomeUnknown):
        await fb.publish(make_request(Platform.FACEBOOK, Content(text="x")))


async def test_drop_on_an_unpublished_upload_is_transient(
    api: FakeApi, fb: FacebookConnector
) -> None:
    api.on("POST", "/v23.0/123/photos", drop())
    with pytest.raises(TransientPlatformError) as info:
        await fb.publish(make_request(Platform.FACEBOOK, Content(media=(IMAGE, IMAGE2))))
    assert not isinstance(info.value, OutcomeUnknown)
    assert not api.calls("POST", "/v23.0/123/feed")


async def test_throttled_publish(api: FakeApi, fb: FacebookConnector) -> None:
    api.on("POST", "/v23.0/123/feed", reply(400, graph_error(80001), buc(5)))
    with pytest.raises(RateLimited) as info:
        await fb.publish(make_request(Platform.FACEBOOK, Content(text="x")))
    assert (info.value.scope, info.value.retry_after) == ("channel", 300.0)


async def test_video_is_refused_before_any_request(api: FakeApi, fb: FacebookConnector) -> None:
    with pytest.raises(ContentRejected, match="not supported"):
        await fb.publish(make_request(Platform.FACEBOOK, Content(text="x", media=(VIDEO,))))
    assert api.seen == []


async def test_find(api: FakeApi, fb: FacebookConnector) -> None:
    def stamp(delta: timedelta) -> str:
        return (NOW + delta).strftime("%Y-%m-%dT%H:%M:%S+0000")

    posts = {
        "data": [
            {"id": "123_3", "message": "other", "created_time": stamp(timedelta(minutes=1))},
            {
                "id": "123_2",
                "message": "hello  \n world",
                "created_time": stamp(-timedelta(minutes=4)),
            },
            {"id": "123_1", "message": "hello world", "created_time": stamp(-timedelta(minutes=6))},
        ],
        "paging": {},
    }
    api.on("GET", "/v23.0/123/published_posts", reply(200, posts))
    request = make_request(Platform.FACEBOOK, Content(text="hello world"))
    found = await fb.find(request)
    assert found is not None
    assert found.external_id == "123_2"
    window_start = NOW - timedelta(minutes=5)  # since minus the clock skew
    assert api.seen[0].query == {
        "fields": "id,message,created_time",
        "limit": "100",
        "since": str(int(window_start.timestamp())),
    }
    assert await fb.find(make_request(Platform.FACEBOOK, Content(text="absent"))) is None
    late = make_request(
        Platform.FACEBOOK, Content(text="hello world"), since=NOW + timedelta(minutes=2)
    )
    assert await fb.find(late) is None


async def test_find_errors_are_never_unknown(api: FakeApi, fb: FacebookConnector) -> None:
    api.on("GET", "/v23.0/123/published_posts", drop())
    with pytest.raises(TransientPlatformError) as info:
        await fb.find(make_request(Platform.FACEBOOK, Content(text="x")))
    assert not isinstance(info.value, OutcomeUnknown)


def listing(*ids: str, following: str | None = None) -> dict[str, object]:
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%S+0000")
    paging: dict[str, object] = {"cursors": {"before": "b", "after": "a"}}
    if following is not None:
        paging["next"] = following
    data = [{"id": i, "message": f"post {i}", "created_time": stamp} for i in ids]
    return {"data": data, "paging": paging}


async def test_find_follows_paging_next_without_the_token_in_the_url(
    api: FakeApi, fb: FacebookConnector
) -> None:
    # Graph writes the token into its links; Herald sends it in the header only.
    path = "/v23.0/123/published_posts"
    following = f"{api.url}{path}?fields=id%2Cmessage&limit=100&access_token=LEAK&after=QUFB"
    pages = (
        reply(200, listing("123_9", "123_8", following=following)),
        reply(200, listing("123_7", "123_6")),
    )
    api.on("GET", path, *pages)
    found = await fb.find(make_request(Platform.FACEBOOK, Content(text="post 123_6")))
    assert found is not None
    assert found.external_id == "123_6"
    first, second = api.calls("GET", path)
    assert "after" not in first.query
    assert parse_qs(second.raw_query) == {
        "fields": ["id,message"],
        "limit": ["100"],
        "after": ["QUFB"],
    }
    assert second.headers["Authorization"] == "Bearer SECRET-TOKEN"
    assert "LEAK" not in second.raw_query
    api.seen.clear()
    api.on("GET", path, *pages)
    assert await fb.find(make_request(Platform.FACEBOOK, Content(text="absent"))) is None
    assert len(api.seen) == 2  # the last page has no next link


async def test_find_never_follows_a_link_to_another_host(
    api: FakeApi, fb: FacebookConnector
) -> None:
    away = "http://198.51.100.7/v23.0/123/published_posts?after=QUFB"
    api.on("GET", "/v23.0/123/published_posts", reply(200, listing("123_9", following=away)))
    with pytest.raises(TransientPlatformError, match="away from the API host"):
        await fb.find(make_request(Platform.FACEBOOK, Content(text="absent")))
    assert len(api.seen) == 1
