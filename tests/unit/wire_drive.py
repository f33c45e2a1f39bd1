"""The connectors' real HTTP paths driven by wire fixtures (tests/wire), no tests.

Each driver scripts a :class:`FakeApi` to answer the fixture's request with the fixture's
documented response, and every other call of the same flow with a plain success, then runs
the connector's publish or look-up and returns what came of it. Absolute URLs in a fixture
(Graph's paging links, LinkedIn's upload URL, YouTube's session URI) are pointed at the fake,
their path and query kept.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from herald.config import FacebookSettings, InstagramSettings, LinkedInSettings, YouTubeSettings
from herald.domain import Content, Media, MediaKind, Platform
from herald.egress.policy import EgressPolicy
from herald.platforms.facebook import FacebookConnector
from herald.platforms.instagram import InstagramConnector
from herald.platforms.linkedin import LinkedInConnector
from herald.platforms.lookup import parse_time
from herald.platforms.youtube import YouTubeConnector
from herald.types import Published
from tests.unit.test_platform_fakes import NOW, FakeApi, Reply, make_request, reply
from tests.wire.fixtures import Fixture, fill

__all__ = ["DRIVERS", "PAUSE", "WORLD"]

PAUSE = 60.0
VERSION = "/v23.0"
#: The placeholder values of the connector tests' world.
WORLD = {
    "{page-id}": "123",
    "{ig-user-id}": "123",
    "{ig-container-id}": "c1",
    "{author-urn}": "urn:li:person:abc",
    "{channel-id}": "UC1",
    "{uploads-playlist-id}": "UU1",
}
LOOPBACK = EgressPolicy.allowing("127.0.0.1/32")  # media files are on the fake, on loopback
IMAGE_PATH, VIDEO_PATH = "/media/a.jpg", "/media/v.mp4"
GOOGLE_CREDS = {"access_token": "T", "refresh_token": "R", "client_id": "C", "client_secret": "S"}

Driver = Callable[[FakeApi, Fixture], Awaitable[Published | None]]


def documented(fixture: Fixture, fake_origin: str = "") -> Reply:
    """The fixture's response, its absolute URLs pointed at ``fake_origin``."""
    resp = fixture.response
    headers = {k: _local(v, fake_origin) for k, v in fill(dict(resp.headers), WORLD).items()}
    body = _localise(fill(resp.body, WORLD), fake_origin) if resp.has_body else b""
    return reply(resp.status, body, headers)


def _local(value: str, origin: str) -> str:
    if not origin or not value.startswith(("http://", "https://")):
        return value
    parts = urlsplit(value)
    return f"{origin}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def _localise(value: Any, origin: str) -> Any:
    if isinstance(value, str):
        return _local(value, origin)
    if isinstance(value, dict):
        return {k: _localise(v, origin) for k, v in value.items()}
    if isinstance(value, list):
        return [_localise(v, origin) for v in value]
    return value


def is_call(fixture: Fixture, method: str, path: str) -> bool:
    return fixture.request.method == method and fixture.request.path == path


def either(fixture: Fixture, method: str, path: str, default: Reply, origin: str = "") -> Reply:
    """The documented answer when the fixture is this call, else the flow's plain success."""
    return documented(fixture, origin) if is_call(fixture, method, path) else default


def _since(value: Any) -> datetime:
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC)
    at = parse_time(value)
    assert at is not None, value
    return at


# -- Facebook -----------------------------------------------------------------------------------
async def facebook(api: FakeApi, fixture: Fixture) -> Published | None:
    fb = FacebookConnector(
        FacebookSettings(base_url=f"{api.url}{VERSION}"), throttle_pause_s=PAUSE, clock=lambda: NOW
    )
    try:
        return await _facebook(api, fixture, fb)
    finally:
        await fb.aclose()


async def _facebook(api: FakeApi, fixture: Fixture, fb: FacebookConnector) -> Published | None:
    body = fixture.request.body or {}
    if fixture.expect == "listed":
        api.on("GET", f"{VERSION}/123/published_posts", documented(fixture, api.url))
        api.on("GET", "/123/published_posts", reply(200, {"data": [], "paging": {}}))
        item = fixture.response.body["data"][0]
        content = Content(text=fixture.expect_detail["text"])
        request = make_request(Platform.FACEBOOK, content, since=_since(item["created_time"]))
        return await fb.find(request)
    api.on(fixture.request.method, VERSION + fill(fixture.request.path, WORLD), documented(fixture))
    if fixture.request.path.endswith("/photos"):
        content = Content(text="look", media=(Media(body["url"], MediaKind.IMAGE),))
    else:
        content = Content(text=body.get("message", ""), link=body.get("link"))
    return await fb.publish(make_request(Platform.FACEBOOK, content))


# -- Instagram ----------------------------------------------------------------------------------
async def instagram(api: FakeApi, fixture: Fixture) -> Published | None:
    ig = InstagramConnector(
        InstagramSettings(base_url=f"{api.url}{VERSION}", poll_initial_s=0.01, poll_timeout_s=0.05),
        throttle_pause_s=PAUSE,
        clock=lambda: NOW,
    )
    try:
        return await _instagram(api, fixture, ig)
    finally:
        await ig.aclose()


async def _instagram(api: FakeApi, fixture: Fixture, ig: InstagramConnector) -> Published | None:
    if fixture.expect == "listed":
        api.on("GET", f"{VERSION}/123/media", documented(fixture, api.url))
        api.on("GET", "/123/media", reply(200, {"data": [], "paging": {}}))
        item = fixture.response.body["data"][0]
        content = Content(text=fixture.expect_detail["text"])
        request = make_request(Platform.INSTAGRAM, content, since=_since(item["timestamp"]))
        return await ig.find(request)
    container = WORLD["{ig-container-id}"]
    created = reply(200, {"id": container})
    api.on("POST", f"{VERSION}/123/media", either(fixture, "POST", "/{ig-user-id}/media", created))
    if is_call(fixture, "POST", "/{ig-user-id}/media"):
        container = fixture.response.body["id"]
    finished = reply(200, {"id": container, "status_code": "FINISHED"})
    api.on("GET", f"{VERSION}/{container}", either(fixture, "GET", "/{ig-container-id}", finished))
    published = either(fixture, "POST", "/{ig-user-id}/media_publish", reply(200, {"id": "m1"}))
    api.on("POST", f"{VERSION}/123/media_publish", published)
    image = Media("https://cdn.example/a.jpg", MediaKind.IMAGE)
    return await ig.publish(make_request(Platform.INSTAGRAM, Content(text="hi", media=(image,))))


# -- LinkedIn -----------------------------------------------------------------------------------
async def linkedin(api: FakeApi, fixture: Fixture) -> Published | None:
    li = LinkedInConnector(
        LinkedInSettings(base_url=api.url, api_version="202510"),
        throttle_pause_s=PAUSE,
        clock=lambda: NOW,
        egress=LOOPBACK,
    )
    try:
        return await _linkedin(api, fixture, li)
    finally:
        await li.aclose()


async def _linkedin(api: FakeApi, fixture: Fixture, li: LinkedInConnector) -> Published | None:
    urn = WORLD["{author-urn}"]
    if fixture.expect == "listed":
        api.on("GET", "/rest/posts", documented(fixture))
        element = fixture.response.body["elements"][0]
        content = Content(text=fixture.expect_detail["text"])
        since = _since(element["lastModifiedAt"])
        return await li.find(make_request(Platform.LINKEDIN, content, external_id=urn, since=since))
    posted = reply(201, b"", {"x-restli-id": "urn:li:share:1"})
    api.on("POST", "/rest/posts", either(fixture, "POST", "/rest/posts", posted))
    if not is_call(fixture, "POST", "/rest/images"):
        content = Content(text=fixture.request.body["commentary"])
        return await li.publish(make_request(Platform.LINKEDIN, content, external_id=urn))
    api.on("GET", IMAGE_PATH, reply(200, b"\xff\xd8 an image"))
    api.on("POST", "/rest/images", documented(fixture, api.url))
    upload = urlsplit(fixture.response.body["value"]["uploadUrl"]).path
    api.on("PUT", upload, reply(201, b""))
    content = Content(text="look", media=(Media(f"{api.url}{IMAGE_PATH}", MediaKind.IMAGE),))
    return await li.publish(make_request(Platform.LINKEDIN, content, external_id=urn))


# -- YouTube ------------------------------------------------------------------------------------
UPLOAD = "/upload/youtube/v3/videos"
VIDEO = {"kind": "youtube#video", "id": "v1", "snippet": {}, "status": {"uploadStatus": "uploaded"}}


async def youtube(api: FakeApi, fixture: Fixture) -> Published | None:
    settings = YouTubeSettings(base_url=api.url, upload_url=api.url, token_url=f"{api.url}/token")
    yt = YouTubeConnector(settings, throttle_pause_s=PAUSE, clock=lambda: NOW, egress=LOOPBACK)
    try:
        return await _youtube(api, fixture, yt)
    finally:
        await yt.aclose()


async def _youtube(api: FakeApi, fixture: Fixture, yt: YouTubeConnector) -> Published | None:
    if fixture.expect == "listed":
        return await _youtube_find(api, fixture, yt)
    api.on("GET", VIDEO_PATH, reply(200, b"\0" * 1024))
    session = reply(200, b"", {"Location": f"{UPLOAD}?uploadType=resumable&upload_id=S1"})
    api.on("POST", UPLOAD, either(fixture, "POST", UPLOAD, session, api.url))
    api.on("PUT", UPLOAD, either(fixture, "PUT", UPLOAD, reply(201, VIDEO)))
    content = Content(text="A video", media=(Media(f"{api.url}{VIDEO_PATH}", MediaKind.VIDEO),))
    request = make_request(Platform.YOUTUBE, content, external_id="UC1", credentials=GOOGLE_CREDS)
    return await yt.publish(request)


CHANNELS = "/youtube/v3/channels"
ITEMS = "/youtube/v3/playlistItems"


async def _youtube_find(api: FakeApi, fixture: Fixture, yt: YouTubeConnector) -> Published | None:
    uploads = {"items": [{"id": "UC1", "contentDetails": {"relatedPlaylists": {"uploads": "UU1"}}}]}
    api.on("GET", CHANNELS, either(fixture, "GET", CHANNELS, reply(200, uploads)))
    if is_call(fixture, "GET", ITEMS):
        snippet = fixture.response.body["items"][0]["snippet"]
        api.on("GET", ITEMS, documented(fixture))
    else:
        snippet = {
            "title": "T",
            "description": "D",
            "publishedAt": "2026-11-28T17:08:01Z",
            "resourceId": {"kind": "youtube#video", "videoId": "v1"},
        }
        api.on("GET", ITEMS, reply(200, {"items": [{"snippet": snippet}]}))
    content = Content(
        text=snippet["description"],
        title=snippet["title"],
        media=(Media("https://cdn.example/v.mp4", MediaKind.VIDEO),),
    )
    request = make_request(
        Platform.YOUTUBE,
        content,
        external_id="UC1",
        credentials=GOOGLE_CREDS,
        since=_since(snippet["publishedAt"]),
    )
    return await yt.find(request)


DRIVERS: dict[str, Driver] = {
    "facebook": facebook,
    "instagram": instagram,
    "linkedin": linkedin,
    "youtube": youtube,
}


def requests_seen(api: FakeApi) -> list[str]:
    """What the connector sent, as ``METHOD path`` lines (for assertion messages)."""
    return [f"{seen.method} {seen.path}" for seen in api.seen]


def json_of(fixture: Fixture) -> bytes:
    return json.dumps(fill(fixture.response.body, WORLD)).encode()
