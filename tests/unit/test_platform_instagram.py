"""Instagram connector: classification, container states, validation and the publish flow."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from herald.config import InstagramSettings
from herald.domain import Content, Media, MediaKind, Platform
from herald.errors import (
    AuthExpired,
    ContentInvalid,
    ContentRejected,
    OutcomeUnknown,
    RateLimited,
    TransientPlatformError,
)
from herald.platforms.answers import ErrorAnswer
from herald.platforms.instagram import (
    InstagramConnector,
    MediaNotReady,
    classify,
    container_state,
)
from herald.platforms.rules import validate_instagram
from tests.unit.test_platform_fakes import NOW, FakeApi, Reply, drop, make_request, reply

PAUSE = 60.0
IMAGE = Media("https://cdn.example/a.jpg", MediaKind.IMAGE)
VIDEO = Media("https://cdn.example/v.mp4", MediaKind.VIDEO)


def ig_error(code: int, subcode: int | None = None) -> bytes:
    err: dict[str, object] = {
        "message": "boom",
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "x",
    }
    if subcode is not None:
        err["error_subcode"] = subcode
    return json.dumps({"error": err}).encode()


@pytest.mark.parametrize(
    ("code", "subcode", "expected", "scope"),
    [
        (9, 2207042, RateLimited, "channel"),
        (9007, 2207027, MediaNotReady, None),
        (-1, 2207001, TransientPlatformError, None),
        (-2, 2207003, TransientPlatformError, None),
        (-1, 2207032, TransientPlatformError, None),
        (4, 2207051, ContentRejected, None),
        (36000, 2207004, ContentRejected, None),
        (1, 2207057, ContentRejected, None),
        (9004, 2207052, ContentRejected, None),
        (190, None, AuthExpired, None),
        (4, None, RateLimited, "app"),
        (17, None, RateLimited, "app"),
        (32, None, RateLimited, "channel"),
        (613, None, RateLimited, "channel"),
        (80002, None, RateLimited, "channel"),
    ],
)
def test_classification(code: int, subcode: int | None, expected: type, scope: str | None) -> None:
    answer = ErrorAnswer(400, {}, ig_error(code, subcode), now=NOW, pause_s=PAUSE, channel_id="17")
    err = classify(answer)
    assert type(err) is expected
    if scope is not None:
        assert isinstance(err, RateLimited)
        assert (err.scope, err.retry_after, err.named) == (scope, PAUSE, False)


def test_account_call_limit_waits_for_the_regain_estimate() -> None:
    # 80002: the account's Business Use Case limit; its header names the minutes to wait.
    usage = {"17": [{"type": "instagram", "call_count": 100, "estimated_time_to_regain_access": 7}]}
    headers = {"X-Business-Use-Case-Usage": json.dumps(usage)}
    answer = ErrorAnswer(400, headers, ig_error(80002), now=NOW, pause_s=PAUSE, channel_id="17")
    err = classify(answer)
    assert isinstance(err, RateLimited)
    assert (err.scope, err.retry_after, err.named) == ("channel", 7 * 60.0, True)


def test_bodyless_5xx_is_unknown_only_on_media_publish() -> None:
    assert isinstance(
        classify(ErrorAnswer(500, {}, b"", now=NOW, pause_s=PAUSE, creates_post=True)),
        OutcomeUnknown,
    )
    assert type(classify(ErrorAnswer(500, {}, b"", now=NOW, pause_s=PAUSE))) is (
        TransientPlatformError
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"status_code": "FINISHED"}, "FINISHED"),
        ({"status_code": "IN_PROGRESS", "status": "In Progress"}, "IN_PROGRESS"),
        ({"status_code": "ERROR", "status": "Error: 2207001 server error"}, TransientPlatformError),
        ({"status_code": "ERROR", "status": "Error: 2207004 too large"}, ContentRejected),
        ({"status_code": "ERROR", "status": "Error"}, ContentRejected),
        ({"status_code": "EXPIRED"}, ContentRejected),
        ({"status_code": "PUBLISHED"}, OutcomeUnknown),
    ],
)
def test_container_state(status: dict[str, str], expected: str | type) -> None:
    if isinstance(expected, str):
        assert container_state(status) == expected
        return
    with pytest.raises(expected) as info:
        container_state(status)
    assert type(info.value) is expected


@pytest.mark.parametrize(
    ("content", "field", "words"),
    [
        (Content(text="no media"), "media", "at least one"),
        (Content(media=(IMAGE,) * 11), "media", "at most 10"),
        (Content(text="x" * 2201, media=(IMAGE,)), "text", "2,200|2200"),
        (Content(text=" ".join(f"#t{i}" for i in range(31)), media=(IMAGE,)), "text", "hashtags"),
        (Content(text="x" * 2190, link="https://example.com/a", media=(IMAGE,)), "text", "link"),
    ],
)
def test_validate_refuses(content: Content, field: str, words: str) -> None:
    with pytest.raises(ContentInvalid, match=words) as info:
        validate_instagram(content)
    assert info.value.field == field


def test_validate_accepts_limits() -> None:
    validate_instagram(Content(text="x" * 2200, media=(IMAGE,)))
    validate_instagram(Content(text=" ".join(f"#t{i}" for i in range(30)), media=(IMAGE,) * 10))


def test_usage_of() -> None:
    ig = InstagramConnector(InstagramSettings(), throttle_pause_s=PAUSE)
    assert ig.usage_of(Content(media=(IMAGE,))) == {"publishes": 1, "containers": 1}
    assert ig.usage_of(Content(media=(IMAGE, VIDEO, IMAGE))) == {"publishes": 1, "containers": 4}
    assert ig.lookup_usage() == {}


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi() as fake:
        yield fake


def connector(api: FakeApi, timeout_s: float = 5.0) -> InstagramConnector:
    settings = InstagramSettings(
        base_url=f"{api.url}/v23.0",
        poll_initial_s=0.001,
        poll_max_s=0.004,
        poll_timeout_s=timeout_s,
    )
    return InstagramConnector(settings, throttle_pause_s=PAUSE, clock=lambda: NOW)


@pytest.fixture
async def ig(api: FakeApi) -> AsyncIterator[InstagramConnector]:
    conn = connector(api)
    yield conn
    await conn.aclose()


def status(code: str) -> Reply:
    return reply(200, {"id": "c1", "status_code": code, "status": code})


REQ = make_request(Platform.INSTAGRAM, Content(text="cap", media=(IMAGE,)), external_id="17")


async def test_polls_until_finished_then_publishes(api: FakeApi, ig: InstagramConnector) -> None:
    api.on("POST", "/v23.0/17/media", reply(200, {"id": "c1"}))
    api.on("GET", "/v23.0/c1", status("IN_PROGRESS"), status("IN_PROGRESS"), status("FINISHED"))
    api.on("POST", "/v23.0/17/media_publish", reply(200, {"id": "m1"}))
    published = await ig.publish(REQ)
    assert published.external_id == "m1"
    assert api.calls("POST", "/v23.0/17/media")[0].json() == {
        "image_url": IMAGE.url,
        "caption": "cap",
    }
    polls = api.calls("GET", "/v23.0/c1")
    assert len(polls) == 3
    assert polls[0].query == {"fields": "status_code,status"}
    assert api.calls("POST", "/v23.0/17/media_publish")[0].json() == {"creation_id": "c1"}
    assert [s.method for s in api.seen][-1] == "POST"  # publish comes after the last poll


async def test_not_ready_polls_again_and_publishes_again(
    api: FakeApi, ig: InstagramConnector
) -> None:
    api.on("POST", "/v23.0/17/media", reply(200, {"id": "c1"}))
    api.on("GET", "/v23.0/c1", status("FINISHED"))
    api.on(
        "POST",
        "/v23.0/17/media_publish",
        reply(400, json.loads(ig_error(9007, 2207027))),
        reply(200, {"id": "m2"}),
    )
    assert (await ig.publish(REQ)).external_id == "m2"
    assert len(api.calls("POST", "/v23.0/17/media_publish")) == 2
    assert len(api.calls("GET", "/v23.0/c1")) == 2


async def test_carousel_and_reel_bodies(api: FakeApi, ig: InstagramConnector) -> None:
    api.on(
        "POST",
        "/v23.0/17/media",
        reply(200, {"id": "k1"}),
        reply(200, {"id": "k2"}),
        reply(200, {"id": "c1"}),
    )
    api.on("GET", "/v23.0/c1", status("FINISHED"))
    api.on("POST", "/v23.0/17/media_publish", reply(200, {"id": "m3"}))
    content = Content(text="set", link="https://example.com", media=(IMAGE, VIDEO))
    await ig.publish(make_request(Platform.INSTAGRAM, content, external_id="17"))
    assert [s.json() for s in api.calls("POST", "/v23.0/17/media")] == [
        {"is_carousel_item": True, "image_url": IMAGE.url},
        {"is_carousel_item": True, "media_type": "VIDEO", "video_url": VIDEO.url},
        {"media_type": "CAROUSEL", "children": "k1,k2", "caption": "set\n\nhttps://example.com"},
    ]
    api.seen.clear()
    api.on("POST", "/v23.0/17/media", reply(200, {"id": "c1"}))
    await ig.publish(
        make_request(Platform.INSTAGRAM, Content(text="r", media=(VIDEO,)), external_id="17")
    )
    assert api.calls("POST", "/v23.0/17/media")[0].json() == {
        "media_type": "REELS",
        "video_url": VIDEO.url,
        "caption": "r",
    }


async def test_container_never_ready_is_transient(api: FakeApi) -> None:
    ig = connector(api, timeout_s=0.05)
    api.on("POST", "/v23.0/17/media", reply(200, {"id": "c1"}))
    api.on("GET", "/v23.0/c1", status("IN_PROGRESS"))
    try:
        with pytest.raises(TransientPlatformError, match="not ready"):
            await ig.publish(REQ)
    finally:
        await ig.aclose()
    assert not api.calls("POST", "/v23.0/17/media_publish")


async def test_failed_container_is_rejected(api: FakeApi, ig: InstagramConnector) -> None:
    api.on("POST", "/v23.0/17/media", reply(200, {"id": "c1"}))
    api.on(
        "GET",
        "/v23.0/c1",
        reply(200, {"status_code": "ERROR", "status": "Error: 2207004 image too large"}),
    )
    with pytest.raises(ContentRejected):
        await ig.publish(REQ)


async def test_only_media_publish_failures_are_unknown(
    api: FakeApi, ig: InstagramConnector
) -> None:
    api.on("POST", "/v23.0/17/media", drop())
    with pytest.raises(TransientPlatformError) as info:
        await ig.publish(REQ)
    assert not isinstance(info.value, OutcomeUnknown)

    api.on("POST", "/v23.0/17/media", reply(200, {"id": "c1"}))
    api.on("GET", "/v23.0/c1", status("FINISHED"))
    api.on("POST", "/v23.0/17/media_publish", drop())
    with pytest.raises(OutcomeUnknown):
        await ig.publish(REQ)
    api.on("POST", "/v23.0/17/media_publish", reply(500, b""))
    with pytest.raises(OutcomeUnknown):
        await ig.publish(REQ)


async def test_publish_limit(api: FakeApi, ig: InstagramConnector) -> None:
    api.on("POST", "/v23.0/17/media", reply(200, {"id": "c1"}))
    api.on("GET", "/v23.0/c1", status("FINISHED"))
    api.on("POST", "/v23.0/17/media_publish", reply(400, json.loads(ig_error(9, 2207042))))
    with pytest.raises(RateLimited) as info:
        await ig.publish(REQ)
    assert info.value.scope == "channel"


async def test_find(api: FakeApi, ig: InstagramConnector) -> None:
    stamp = (NOW + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    api.on(
        "GET",
        "/v23.0/17/media",
        reply(
            200,
            {
                "data": [
                    {"id": "m9", "caption": "other", "timestamp": stamp},
                    {"id": "m8", "caption": "cap ", "timestamp": stamp},
                ],
                "paging": {},
            },
        ),
    )
    found = await ig.find(REQ)
    assert found is not None
    assert found.external_id == "m8"
    window_start = NOW - timedelta(minutes=5)  # since minus the clock skew
    assert api.seen[0].query == {
        "fields": "id,caption,timestamp",
        "limit": "100",
        "since": str(int(window_start.timestamp())),
    }


@pytest.mark.parametrize(("code", "subcode"), [(-1, 2207001), (-2, 2207003), (2, None)])
def test_a_server_error_on_media_publish_is_an_unknown_outcome(
    code: int, subcode: int | None
) -> None:
    # Instagram refuses no repeat the way Facebook does (506): resending on a guess could
    # publish twice, so the post is looked up first.
    answer = ErrorAnswer(
        500, {}, ig_error(code, subcode), now=NOW, pause_s=PAUSE, creates_post=True
    )
    err = classify(answer)
    assert type(err) is OutcomeUnknown


def test_not_ready_on_media_publish_is_a_refusal_not_an_unknown() -> None:
    answer = ErrorAnswer(
        400, {}, ig_error(9007, 2207027), now=NOW, pause_s=PAUSE, creates_post=True
    )
    err = classify(answer)
    assert type(err) is MediaNotReady
