"""YouTube connector: classification, quota day, titles, validation, upload and token flows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from pydantic import ValidationError

from herald.config import YouTubeSettings
from herald.domain import Content, Media, MediaKind, Platform
from herald.egress.policy import EgressPolicy
from herald.errors import (
    AuthExpired,
    ContentInvalid,
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    TransientPlatformError,
)
from herald.platforms.answers import ErrorAnswer
from herald.platforms.google_auth import classify_refresh
from herald.platforms.rules import validate_youtube, youtube_title
from herald.platforms.youtube import YouTubeConnector, classify, seconds_to_pacific_midnight
from herald.types import PublishRequest
from tests.unit.test_platform_fakes import NOW, FakeApi, Reply, drop, make_request, reply

PAUSE = 60.0
VIDEO = Media("https://cdn.example/v.mp4", MediaKind.VIDEO)
IMAGE = Media("https://cdn.example/a.jpg", MediaKind.IMAGE)


def google_error(status: int, reason: str) -> bytes:
    return json.dumps(
        {
            "error": {
                "code": status,
                "message": f"{reason}!",
                "errors": [{"domain": "youtube", "reason": reason, "message": "m"}],
            }
        }
    ).encode()


def run(status: int, reason: str | None, headers: dict[str, str] | None = None) -> PlatformError:
    body = google_error(status, reason) if reason else b""
    return classify(ErrorAnswer(status, headers or {}, body, now=NOW, pause_s=PAUSE))


@pytest.mark.parametrize(
    ("now", "wait"),
    [
        (NOW, 15 * 3600.0),  # 09:00 PST
        (datetime(2026, 3, 7, 20, 0, tzinfo=UTC), 12 * 3600.0),  # noon PST, eve of DST
        (datetime(2026, 3, 8, 12, 0, tzinfo=UTC), 19 * 3600.0),  # 05:00 PDT, a 23-hour day
        (datetime(2026, 11, 1, 8, 0, tzinfo=UTC), 24 * 3600.0),  # 01:00 PDT, a 25-hour day
        (datetime(2026, 7, 1, 6, 59, 59, tzinfo=UTC), 1.0),  # one second to PDT midnight
    ],
)
def test_quota_resets_at_pacific_midnight(now: datetime, wait: float) -> None:
    assert seconds_to_pacific_midnight(now) == wait
    err = classify(ErrorAnswer(403, {}, google_error(403, "quotaExceeded"), now=now, pause_s=PAUSE))
    assert isinstance(err, RateLimited)
    assert (err.scope, err.retry_after) == ("app", wait)


@pytest.mark.parametrize(
    ("status", "reason", "scope", "wait"),
    [
        (403, "rateLimitExceeded", "channel", PAUSE),
        (403, "userRateLimitExceeded", "channel", PAUSE),
        (400, "uploadLimitExceeded", "channel", 86_400.0),
        (429, None, "app", PAUSE),
    ],
)
def test_throttling(status: int, reason: str | None, scope: str, wait: float) -> None:
    err = run(status, reason)
    assert isinstance(err, RateLimited)
    assert (err.scope, err.retry_after) == (scope, wait)
    assert err.named is (wait != PAUSE)


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (401, "authError", AuthExpired),
        (403, "forbidden", AuthExpired),
        (400, "invalidTitle", ContentRejected),
        (400, "invalidDescription", ContentRejected),
        (400, "mediaBodyRequired", ContentRejected),
        (400, "somethingElse", ContentRejected),
        (500, "backendError", TransientPlatformError),
        (503, "backendError", TransientPlatformError),
        (502, None, TransientPlatformError),
    ],
)
def test_classification(status: int, reason: str | None, expected: type) -> None:
    err = run(status, reason)
    assert err.code == reason
    assert type(err) is expected


def test_503_with_retry_after_pauses_the_app() -> None:
    err = run(503, "backendError", {"Retry-After": "20"})
    assert isinstance(err, RateLimited)
    assert (err.scope, err.retry_after, err.named) == ("app", 20.0, True)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "invalid_grant"}, AuthExpired),
        (401, {"error": "invalid_client"}, AuthExpired),
        (429, None, RateLimited),
        # A throttled refresh: 403 without an OAuth error (Google's API envelope, or a page).
        (403, json.loads(google_error(403, "rateLimitExceeded")), RateLimited),
        (403, None, RateLimited),
        (403, {"error": "access_denied"}, AuthExpired),
        (500, None, TransientPlatformError),
    ],
)
def test_refresh_classification(status: int, body: object, expected: type) -> None:
    raw = json.dumps(body).encode() if body else b""
    assert type(classify_refresh(ErrorAnswer(status, {}, raw, now=NOW, pause_s=PAUSE))) is expected


@pytest.mark.parametrize(
    ("content", "title"),
    [
        (Content(text="body", title="My title"), "My title"),
        (Content(text="First line\nsecond"), "First line"),
        (Content(text="\n\n  Spaced first  \nnext"), "Spaced first"),
        (Content(text="a <b> c"), "a b c"),
        (Content(text="x" * 150), "x" * 100),
        (Content(text=""), ""),
    ],
)
def test_title_derivation(content: Content, title: str) -> None:
    assert youtube_title(content) == title


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (Content(text="t"), "media"),
        (Content(text="t", media=(VIDEO, VIDEO)), "media"),
        (Content(text="t", media=(VIDEO, IMAGE)), "media"),
        (Content(media=(VIDEO,)), "title"),
        (Content(text="t", title="x" * 101, media=(VIDEO,)), "title"),
        (Content(text="t", title="a <b>", media=(VIDEO,)), "title"),
        (Content(text="é" * 2501, media=(VIDEO,)), "text"),  # 2,501 characters, 5,002 bytes
    ],
)
def test_validate_refuses(content: Content, field: str) -> None:
    with pytest.raises(ContentInvalid) as info:
        validate_youtube(content)
    assert info.value.field == field


def test_validate_accepts_and_usage_models() -> None:
    validate_youtube(Content(text="é" * 2500, media=(VIDEO,)))
    validate_youtube(Content(title="x" * 100, media=(VIDEO,)))
    bucket = YouTubeConnector(YouTubeSettings(), throttle_pause_s=PAUSE)
    units = YouTubeConnector(
        YouTubeSettings(quota_model="units", insert_cost_units=1600), throttle_pause_s=PAUSE
    )
    content = Content(text="t", media=(VIDEO,))
    assert bucket.usage_of(content) == {"insert_calls": 1, "uploads": 1}
    assert units.usage_of(content) == {"units": 1600, "uploads": 1}
    assert bucket.lookup_usage() == units.lookup_usage() == {"units": 2}


# -- flows against a local fake ------------------------------------------------------------

UPLOAD = "/upload/youtube/v3/videos"
BYTES = b"0123456789"
CREDS = {"access_token": "OLD", "refresh_token": "R", "client_id": "C", "client_secret": "S"}
VIDEO_RESOURCE = {
    "kind": "youtube#video",
    "id": "vid12345678",
    "status": {"uploadStatus": "uploaded"},
}


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi() as fake:
        fake.on("GET", "/media/v.mp4", reply(200, BYTES))
        fake.on("POST", UPLOAD, reply(200, b"", {"Location": f"{UPLOAD}?upload_id=S1"}))
        yield fake


@pytest.fixture
async def yt(api: FakeApi) -> AsyncIterator[YouTubeConnector]:
    settings = YouTubeSettings(base_url=api.url, upload_url=api.url, token_url=f"{api.url}/token")
    loopback = EgressPolicy.allowing("127.0.0.1/32")  # its media is on the fake, on loopback
    conn = YouTubeConnector(settings, throttle_pause_s=PAUSE, clock=lambda: NOW, egress=loopback)
    yield conn
    await conn.aclose()


def req(api: FakeApi, since: datetime = NOW) -> PublishRequest:
    content = Content(
        text="Launch day\nAll the details",
        title=None,
        media=(Media(f"{api.url}/media/v.mp4", MediaKind.VIDEO),),
    )
    return make_request(
        Platform.YOUTUBE, content, external_id="UC1", credentials=CREDS, since=since
    )


async def test_upload(api: FakeApi, yt: YouTubeConnector) -> None:
    api.on("PUT", UPLOAD, reply(201, VIDEO_RESOURCE))
    published = await yt.publish(req(api))
    assert published.external_id == "vid12345678"
    start = api.calls("POST", UPLOAD)[0]
    assert start.query == {"uploadType": "resumable", "part": "snippet,status"}
    assert start.headers["X-Upload-Content-Length"] == "10"
    assert start.headers["X-Upload-Content-Type"] == "video/*"
    assert start.json() == {
        "snippet": {
            "title": "Launch day",
            "description": "Launch day\nAll the details",
            "categoryId": "22",
        },
        "status": {"privacyStatus": "public", "selfDeclaredMadeForKids": False},
    }
    put = api.calls("PUT", UPLOAD)[0]
    assert put.query == {"upload_id": "S1"}
    assert put.body == BYTES
    assert put.headers["Content-Type"] == "video/*"
    assert put.headers["Authorization"] == "Bearer OLD"
    assert "Authorization" not in api.calls("GET", "/media/v.mp4")[0].headers


async def test_dropped_put_then_status_says_complete(api: FakeApi, yt: YouTubeConnector) -> None:
    api.on("PUT", UPLOAD, drop(), reply(200, VIDEO_RESOURCE))
    assert (await yt.publish(req(api))).external_id == "vid12345678"
    status = api.calls("PUT", UPLOAD)[1]
    assert status.body == b""
    assert status.headers["Content-Range"] == "bytes */10"


async def test_dropped_put_then_resume_from_range(api: FakeApi, yt: YouTubeConnector) -> None:
    api.on(
        "PUT", UPLOAD, drop(), reply(308, b"", {"Range": "bytes=0-3"}), reply(201, VIDEO_RESOURCE)
    )
    assert (await yt.publish(req(api))).external_id == "vid12345678"
    resume = api.calls("PUT", UPLOAD)[2]
    assert resume.headers["Content-Range"] == "bytes 4-9/10"
    assert resume.body == BYTES[4:]


async def test_server_error_on_put_checks_the_session(api: FakeApi, yt: YouTubeConnector) -> None:
    api.on(
        "PUT",
        UPLOAD,
        reply(503, google_error(503, "backendError")),
        reply(308, b""),
        reply(201, VIDEO_RESOURCE),
    )
    assert (await yt.publish(req(api))).external_id == "vid12345678"
    assert api.calls("PUT", UPLOAD)[2].body == BYTES  # 308 without Range: start from 0


async def test_dropped_put_and_session_gone_is_transient(
    api: FakeApi, yt: YouTubeConnector
) -> None:
    api.on("PUT", UPLOAD, drop(), reply(404, b""))
    with pytest.raises(TransientPlatformError) as info:
        await yt.publish(req(api))
    assert not isinstance(info.value, OutcomeUnknown)


@pytest.mark.parametrize("status_reply", [drop(), reply(500, b"")])
async def test_dropped_put_and_failed_status_is_unknown(
    api: FakeApi, yt: YouTubeConnector, status_reply: Reply
) -> None:
    api.on("PUT", UPLOAD, drop(), status_reply)
    with pytest.raises(OutcomeUnknown):
        await yt.publish(req(api))


async def test_session_start_drop_is_transient(api: FakeApi, yt: YouTubeConnector) -> None:
    api.on("POST", UPLOAD, drop())
    with pytest.raises(TransientPlatformError) as info:
        await yt.publish(req(api))
    assert not isinstance(info.value, OutcomeUnknown)


async def test_quota_exceeded_on_session_start(api: FakeApi, yt: YouTubeConnector) -> None:
    api.on("POST", UPLOAD, reply(403, json.loads(google_error(403, "quotaExceeded"))))
    with pytest.raises(RateLimited) as info:
        await yt.publish(req(api))
    assert (info.value.scope, info.value.retry_after) == ("app", 15 * 3600.0)


async def test_token_refresh_then_repeat_and_cache(api: FakeApi, yt: YouTubeConnector) -> None:
    auth_error = json.loads(google_error(401, "authError"))
    api.on(
        "POST",
        UPLOAD,
        reply(401, auth_error),
        reply(200, b"", {"Location": f"{UPLOAD}?upload_id=S1"}),
    )
    api.on(
        "POST",
        "/token",
        reply(200, {"access_token": "NEW", "expires_in": 3599, "token_type": "Bearer"}),
    )
    api.on("PUT", UPLOAD, reply(201, VIDEO_RESOURCE))
    await yt.publish(req(api))
    starts = api.calls("POST", UPLOAD)
    assert [s.headers["Authorization"] for s in starts] == ["Bearer OLD", "Bearer NEW"]
    (refresh,) = api.calls("POST", "/token")
    assert parse_qs(refresh.body.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["R"],
        "client_id": ["C"],
        "client_secret": ["S"],
    }
    assert "R" not in refresh.raw_query
    await yt.publish(req(api))  # the refreshed token is reused: no second refresh
    assert len(api.calls("POST", "/token")) == 1
    assert api.calls("POST", UPLOAD)[-1].headers["Authorization"] == "Bearer NEW"


async def test_refresh_refused_is_auth_expired(api: FakeApi, yt: YouTubeConnector) -> None:
    api.on("POST", UPLOAD, reply(401, json.loads(google_error(401, "authError"))))
    api.on(
        "POST",
        "/token",
        reply(400, {"error": "invalid_grant", "error_description": "Token has been expired"}),
    )
    with pytest.raises(AuthExpired):
        await yt.publish(req(api))
    assert len(api.calls("POST", UPLOAD)) == 1


async def test_find_uses_the_cached_uploads_playlist(api: FakeApi, yt: YouTubeConnector) -> None:
    api.on(
        "GET",
        "/youtube/v3/channels",
        reply(
            200,
            {"items": [{"id": "UC1", "contentDetails": {"relatedPlaylists": {"uploads": "UU1"}}}]},
        ),
    )
    recent = (NOW + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.on(
        "GET",
        "/youtube/v3/playlistItems",
        reply(
            200,
            {
                "items": [
                    {
                        "snippet": {
                            "title": "Launch day",
                            "description": "other",
                            "publishedAt": recent,
                            "resourceId": {"kind": "youtube#video", "videoId": "vidA"},
                        }
                    },
                    {
                        "snippet": {
                            "title": "Launch  day",
                            "description": "Launch day All the details",
                            "publishedAt": recent,
                            "resourceId": {"kind": "youtube#video", "videoId": "vidB"},
                        }
                    },
                ]
            },
        ),
    )
    found = await yt.find(req(api))
    assert found is not None
    assert found.external_id == "vidB"
    assert api.calls("GET", "/youtube/v3/channels")[0].query == {
        "part": "contentDetails",
        "mine": "true",
    }
    assert api.calls("GET", "/youtube/v3/playlistItems")[0].query == {
        "part": "snippet",
        "playlistId": "UU1",
        "maxResults": "50",
    }
    assert await yt.find(req(api, since=NOW + timedelta(minutes=7))) is None
    assert len(api.calls("GET", "/youtube/v3/channels")) == 1


async def test_concurrent_401s_refresh_once(api: FakeApi, yt: YouTubeConnector) -> None:
    auth_error = json.loads(google_error(401, "authError"))
    channels = {"items": [{"id": "UC1", "contentDetails": {"relatedPlaylists": {"uploads": "U"}}}]}
    api.on(
        "GET",
        "/youtube/v3/channels",
        reply(401, auth_error),
        reply(401, auth_error),
        reply(200, channels),
    )
    api.on("GET", "/youtube/v3/playlistItems", reply(200, {"items": []}))
    api.on("POST", "/token", reply(200, {"access_token": "NEW", "expires_in": 3599}))
    results = await asyncio.gather(yt.find(req(api)), yt.find(req(api)))
    assert results == [None, None]
    assert len(api.calls("POST", "/token")) == 1


def playlist_page(
    names: list[str], published: datetime, token: str | None = None
) -> dict[str, object]:
    stamp = published.strftime("%Y-%m-%dT%H:%M:%SZ")
    items = [
        {
            "snippet": {
                "title": name,
                "description": f"about {name}",
                "publishedAt": stamp,
                "resourceId": {"kind": "youtube#video", "videoId": name},
            }
        }
        for name in names
    ]
    body: dict[str, object] = {"items": items, "pageInfo": {"totalResults": 999}}
    if token is not None:
        body["nextPageToken"] = token
    return body


async def test_find_follows_next_page_token_until_before_the_window(
    api: FakeApi, yt: YouTubeConnector
) -> None:
    channels = {
        "items": [{"id": "UC1", "contentDetails": {"relatedPlaylists": {"uploads": "UU1"}}}]
    }
    api.on("GET", "/youtube/v3/channels", reply(200, channels))
    recent, before = NOW - timedelta(minutes=1), NOW - timedelta(minutes=6)
    pages = (
        reply(200, playlist_page([f"v{n}" for n in range(50)], recent, "T2")),
        reply(200, playlist_page(["v50", "v51"], recent, "T3")),
        reply(200, playlist_page(["v52"], before, "T4")),  # before the window: the end
        reply(500, {}),  # never asked for
    )
    api.on("GET", "/youtube/v3/playlistItems", *pages)
    assert await yt.find(req(api)) is None
    asked = [s.query.get("pageToken") for s in api.calls("GET", "/youtube/v3/playlistItems")]
    assert asked == [None, "T2", "T3"]
    api.seen.clear()
    api.on("GET", "/youtube/v3/playlistItems", *pages)
    content = Content(
        title="v51", text="about v51", media=(Media(f"{api.url}/v.mp4", MediaKind.VIDEO),)
    )
    request = make_request(Platform.YOUTUBE, content, external_id="UC1", credentials=CREDS)
    found = await yt.find(request)
    assert found is not None
    assert found.external_id == "v51"
    assert len(api.calls("GET", "/youtube/v3/playlistItems")) == 2


# -- chunks ----------------------------------------------------------------------------------

UNIT = 256 * 1024
BIG = bytes(range(256)) * 2500  # 640,000 bytes: two full chunks of 256 KiB and a short one


@pytest.fixture
async def chunked(api: FakeApi) -> AsyncIterator[YouTubeConnector]:
    settings = YouTubeSettings(
        base_url=api.url, upload_url=api.url, token_url=f"{api.url}/token", upload_chunk_bytes=UNIT
    )
    loopback = EgressPolicy.allowing("127.0.0.1/32")
    conn = YouTubeConnector(settings, throttle_pause_s=PAUSE, clock=lambda: NOW, egress=loopback)
    yield conn
    await conn.aclose()


def acked(last: int) -> Reply:
    return reply(308, b"", {"Range": f"bytes=0-{last}"})


def no_length(body: bytes) -> Reply:
    """The file sent chunked: the source declares no length."""

    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    return respond


async def test_a_video_goes_in_chunks_of_the_configured_size(
    api: FakeApi, chunked: YouTubeConnector
) -> None:
    api.on("GET", "/media/v.mp4", reply(200, BIG))
    api.on("PUT", UPLOAD, acked(UNIT - 1), acked(2 * UNIT - 1), reply(201, VIDEO_RESOURCE))
    assert (await chunked.publish(req(api))).external_id == "vid12345678"
    assert api.calls("POST", UPLOAD)[0].headers["X-Upload-Content-Length"] == str(len(BIG))
    puts = api.calls("PUT", UPLOAD)
    assert [p.headers["Content-Range"] for p in puts] == [
        f"bytes 0-{UNIT - 1}/{len(BIG)}",
        f"bytes {UNIT}-{2 * UNIT - 1}/{len(BIG)}",
        f"bytes {2 * UNIT}-{len(BIG) - 1}/{len(BIG)}",
    ]
    assert b"".join(p.body for p in puts) == BIG


async def test_a_source_without_length_declares_it_with_the_last_chunk(
    api: FakeApi, chunked: YouTubeConnector
) -> None:
    api.on("GET", "/media/v.mp4", no_length(BIG))
    api.on("PUT", UPLOAD, acked(UNIT - 1), acked(2 * UNIT - 1), reply(201, VIDEO_RESOURCE))
    assert (await chunked.publish(req(api))).external_id == "vid12345678"
    assert "X-Upload-Content-Length" not in api.calls("POST", UPLOAD)[0].headers
    ranges = [p.headers["Content-Range"] for p in api.calls("PUT", UPLOAD)]
    assert ranges == [
        f"bytes 0-{UNIT - 1}/*",
        f"bytes {UNIT}-{2 * UNIT - 1}/*",
        f"bytes {2 * UNIT}-{len(BIG) - 1}/{len(BIG)}",
    ]


async def test_a_file_of_exactly_one_chunk_is_its_last(
    api: FakeApi, chunked: YouTubeConnector
) -> None:
    api.on("GET", "/media/v.mp4", no_length(BIG[:UNIT]))
    api.on("PUT", UPLOAD, reply(201, VIDEO_RESOURCE))
    await chunked.publish(req(api))
    (put,) = api.calls("PUT", UPLOAD)
    assert put.headers["Content-Range"] == f"bytes 0-{UNIT - 1}/{UNIT}"


async def test_a_dropped_chunk_resumes_where_the_session_says(
    api: FakeApi, chunked: YouTubeConnector
) -> None:
    # The second chunk drops; the session holds only the first: the second goes again.
    api.on("GET", "/media/v.mp4", reply(200, BIG))
    api.on(
        "PUT",
        UPLOAD,
        acked(UNIT - 1),
        drop(),
        acked(UNIT - 1),
        acked(2 * UNIT - 1),
        reply(201, VIDEO_RESOURCE),
    )
    await chunked.publish(req(api))
    puts = api.calls("PUT", UPLOAD)
    assert puts[2].headers["Content-Range"] == f"bytes */{len(BIG)}"  # the status query
    assert puts[3].headers["Content-Range"] == f"bytes {UNIT}-{2 * UNIT - 1}/{len(BIG)}"
    assert puts[3].body == BIG[UNIT : 2 * UNIT]
    assert len(api.calls("GET", "/media/v.mp4")) == 1  # the chunk held was enough


async def test_a_session_that_lost_bytes_already_sent_gets_them_from_the_source_again(
    api: FakeApi, chunked: YouTubeConnector
) -> None:
    api.on("GET", "/media/v.mp4", reply(200, BIG))
    api.on(
        "PUT",
        UPLOAD,
        acked(UNIT - 1),
        reply(503, google_error(503, "backendError")),
        acked(99),  # the session says it holds only 100 bytes
        acked(UNIT + 99),
        acked(2 * UNIT + 99),
        reply(201, VIDEO_RESOURCE),
    )
    await chunked.publish(req(api))
    puts = api.calls("PUT", UPLOAD)
    assert puts[3].headers["Content-Range"] == f"bytes 100-{UNIT + 99}/{len(BIG)}"
    assert puts[3].body == BIG[100 : UNIT + 100]
    assert b"".join(p.body for p in puts[3:]) == BIG[100:]
    # The fake ignores Range: the source was read again from its start, the rest skipped.
    assert len(api.calls("GET", "/media/v.mp4")) == 2


async def test_an_interrupted_chunk_before_the_last_made_no_video(
    api: FakeApi, chunked: YouTubeConnector
) -> None:
    # The status query fails too, but that chunk could not have completed the video.
    api.on("GET", "/media/v.mp4", reply(200, BIG))
    api.on("PUT", UPLOAD, drop())
    with pytest.raises(TransientPlatformError) as info:
        await chunked.publish(req(api))
    assert not isinstance(info.value, OutcomeUnknown)
    assert "no video was made" in info.value.message


async def test_a_throttled_status_query_before_the_last_chunk_is_the_throttle(
    api: FakeApi, chunked: YouTubeConnector
) -> None:
    # The first chunk's answer is lost and its status query throttled: no video can exist
    # yet, so the delivery waits the throttle out; nothing more goes to that session.
    api.on("GET", "/media/v.mp4", reply(200, BIG))
    api.on("PUT", UPLOAD, drop(), reply(403, google_error(403, "rateLimitExceeded")))
    with pytest.raises(RateLimited) as info:
        await chunked.publish(req(api))
    assert (info.value.scope, info.value.retry_after) == ("channel", PAUSE)
    assert len(api.calls("PUT", UPLOAD)) == 2


async def test_a_throttled_status_query_after_the_last_chunk_is_unknown(
    api: FakeApi, yt: YouTubeConnector
) -> None:
    api.on("PUT", UPLOAD, drop(), reply(403, google_error(403, "rateLimitExceeded")))
    with pytest.raises(OutcomeUnknown):
        await yt.publish(req(api))


async def test_once_a_last_chunk_went_out_an_unconfirmed_chunk_is_unknown(
    api: FakeApi, chunked: YouTubeConnector
) -> None:
    # The last chunk's answer is lost and the session says it lacks the second chunk; that
    # one goes again, and neither it nor the status query answers: the first last chunk
    # may yet have made the video, so the outcome is unknown (a look-up decides).
    api.on("GET", "/media/v.mp4", reply(200, BIG))
    api.on("PUT", UPLOAD, acked(UNIT - 1), acked(2 * UNIT - 1), drop(), acked(UNIT - 1), drop())
    with pytest.raises(OutcomeUnknown):
        await chunked.publish(req(api))
    puts = api.calls("PUT", UPLOAD)
    assert puts[4].headers["Content-Range"] == f"bytes {UNIT}-{2 * UNIT - 1}/{len(BIG)}"


async def test_a_session_that_never_moves_on_is_given_up(
    api: FakeApi, chunked: YouTubeConnector
) -> None:
    api.on("GET", "/media/v.mp4", reply(200, BIG))
    api.on("PUT", UPLOAD, reply(308, b""))  # never acknowledges a byte
    with pytest.raises(TransientPlatformError) as info:
        await chunked.publish(req(api))
    assert "still incomplete after 3 tries" in info.value.message
    assert len(api.calls("PUT", UPLOAD)) == 3


async def test_a_video_over_the_cap_costs_no_session(api: FakeApi) -> None:
    settings = YouTubeSettings(
        base_url=api.url, upload_url=api.url, token_url=f"{api.url}/token", max_media_bytes=5
    )
    loopback = EgressPolicy.allowing("127.0.0.1/32")
    conn = YouTubeConnector(settings, throttle_pause_s=PAUSE, clock=lambda: NOW, egress=loopback)
    try:
        with pytest.raises(ContentRejected) as refused:
            await conn.publish(req(api))
    finally:
        await conn.aclose()
    assert refused.value.message == "youtube: media too large: over 5 bytes (10 bytes declared)"
    assert not api.calls("POST", UPLOAD)


def test_the_chunk_size_keeps_the_protocol_unit() -> None:
    with pytest.raises(ValidationError):
        YouTubeSettings(upload_chunk_bytes=UNIT + 1)
    with pytest.raises(ValidationError):
        YouTubeSettings(upload_chunk_bytes=UNIT // 2)
    assert YouTubeSettings(upload_chunk_bytes=3 * UNIT).upload_chunk_bytes == 3 * UNIT
