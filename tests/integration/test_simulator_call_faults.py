"""Faults on every kind of call, endpoint by endpoint (:class:`~herald.simulator.CallKind`).

With one kind's error, throttle, drop or timeout rate at 1, each endpoint of that kind answers
the platform's own transient error or throttle, or closes unanswered (a timeout after holding
the request), the audit records ``"{kind}:{fault}"`` (the calls that publish take the top-level
rates and record the bare ``"{fault}"``), and every other kind of call on the platform goes
through untouched. A dropped container creation or upload set-up is carried out first: what it
made exists, orphaned, as on the platform.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from herald.config import LinkedInSettings
from herald.domain import Platform
from herald.simulator import (
    CallFaults,
    CallKind,
    FaultConfig,
    InstagramSim,
    SimAccount,
    Simulator,
    YouTubeSim,
)
from tests.integration.sim_calls import call, exact_config, linkedin_post, sent_once

FB, IG, LI, YT = Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN, Platform.YOUTUBE
K = CallKind
FAULTS = ("error", "throttle", "drop", "timeout")
HANG_S = 0.05
GRAPH_THROTTLE = 613  # the one code an injected Graph throttle picks here
UPLOAD = "/upload/youtube/v3/videos"
VIDEO = b"0123456789"

Answer = tuple[int, Any, Any]  # status, JSON body (None when empty), headers
Send = Callable[[], Awaitable[Answer]]


@dataclass
class World:
    sim: Simulator
    http: aiohttp.ClientSession
    accounts: dict[Platform, SimAccount]

    def url(self, platform: Platform, path: str) -> str:
        base = {
            FB: self.sim.urls.facebook,
            IG: self.sim.urls.instagram,
            LI: self.sim.urls.linkedin,
            YT: self.sim.urls.youtube,
        }[platform]
        return f"{base}{path}"

    def node(self, platform: Platform) -> str:
        return self.accounts[platform].external_id

    def send(self, method: str, platform: Platform, path: str, **kwargs: Any) -> Send:
        """The request, as the platform's account, to send when the test says."""
        url = path if path.startswith("http") else self.url(platform, path)
        if platform is LI:
            kwargs["headers"] = {**_LINKEDIN, **kwargs.get("headers", {})}

        def go() -> Awaitable[Answer]:
            return call(self.http, method, url, self.accounts[platform], **kwargs)

        return go

    async def now(self, method: str, platform: Platform, path: str, **kwargs: Any) -> Answer:
        """The request, sent at once (to set up the one under test, before any fault)."""
        answer = await self.send(method, platform, path, **kwargs)()
        assert answer[0] < 300, answer
        return answer


_LINKEDIN = {
    "LinkedIn-Version": LinkedInSettings().api_version,
    "X-Restli-Protocol-Version": "2.0.0",
}


def _tag() -> str:
    return uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class Endpoint:
    platform: Platform
    kind: CallKind
    name: str
    ok: int  # its status when nothing fails
    prepare: Callable[[World], Awaitable[Send]]  # set-up with no faults on; the call to make

    def __str__(self) -> str:
        return f"{self.platform.value}-{self.kind.value}-{self.name}"


ENDPOINTS: list[Endpoint] = []


def endpoint(
    platform: Platform, kind: CallKind, name: str, ok: int = 200
) -> Callable[[Callable[[World], Awaitable[Send]]], Callable[[World], Awaitable[Send]]]:
    def register(
        prepare: Callable[[World], Awaitable[Send]],
    ) -> Callable[[World], Awaitable[Send]]:
        ENDPOINTS.append(Endpoint(platform, kind, name, ok, prepare))
        return prepare

    return register


# -- Facebook ---------------------------------------------------------------------------------


@endpoint(FB, K.PUBLISH, "feed")
async def _fb_feed(w: World) -> Send:
    return w.send("POST", FB, f"/{w.node(FB)}/feed", json={"message": _tag()})


@endpoint(FB, K.PUBLISH, "photos")
async def _fb_photos(w: World) -> Send:
    photo = {"url": w.sim.media_url("image", "p.jpg"), "caption": _tag()}
    return w.send("POST", FB, f"/{w.node(FB)}/photos", json=photo)


def _fb_edge(edge: str) -> Callable[[World], Awaitable[Send]]:
    async def prepare(w: World) -> Send:
        return w.send("GET", FB, f"/{w.node(FB)}/{edge}")

    return prepare


for _edge in ("published_posts", "feed", "posts"):
    endpoint(FB, K.READ, _edge)(_fb_edge(_edge))


@endpoint(FB, K.READ, "post-by-id")
async def _fb_post(w: World) -> Send:
    _, body, _ = await w.now("POST", FB, f"/{w.node(FB)}/feed", json={"message": _tag()})
    return w.send("GET", FB, f"/{body['id']}")


# -- Instagram --------------------------------------------------------------------------------


def _image(w: World) -> dict[str, str]:
    return {"image_url": w.sim.media_url("image", "i.jpg"), "caption": _tag()}


async def _container(w: World) -> str:
    _, body, _ = await w.now("POST", IG, f"/{w.node(IG)}/media", json=_image(w))
    return str(body["id"])


@endpoint(IG, K.PUBLISH, "media_publish")
async def _ig_publish(w: World) -> Send:
    container = await _container(w)
    return w.send("POST", IG, f"/{w.node(IG)}/media_publish", json={"creation_id": container})


@endpoint(IG, K.CONTAINER, "media")
async def _ig_container(w: World) -> Send:
    return w.send("POST", IG, f"/{w.node(IG)}/media", json=_image(w))


@endpoint(IG, K.STATUS, "container")
async def _ig_status(w: World) -> Send:
    container = await _container(w)
    return w.send("GET", IG, f"/{container}", params={"fields": "status_code"})


@endpoint(IG, K.READ, "media-listing")
async def _ig_media(w: World) -> Send:
    return w.send("GET", IG, f"/{w.node(IG)}/media")


@endpoint(IG, K.READ, "publishing-limit")
async def _ig_limit(w: World) -> Send:
    return w.send("GET", IG, f"/{w.node(IG)}/content_publishing_limit")


@endpoint(IG, K.READ, "media-by-id")
async def _ig_read(w: World) -> Send:
    container = await _container(w)
    _, body, _ = await w.now(
        "POST", IG, f"/{w.node(IG)}/media_publish", json={"creation_id": container}
    )
    return w.send("GET", IG, f"/{body['id']}")


# -- LinkedIn ---------------------------------------------------------------------------------


def _li_post(w: World, **extra: Any) -> dict[str, Any]:
    return linkedin_post(w.node(LI), _tag(), **extra)


async def _li_upload(w: World) -> dict[str, str]:
    _, body, _ = await w.now(
        "POST",
        LI,
        "/rest/images",
        params={"action": "initializeUpload"},
        json={"initializeUploadRequest": {"owner": w.node(LI)}},
    )
    return dict(body["value"])


@endpoint(LI, K.PUBLISH, "posts", ok=201)
async def _li_publish(w: World) -> Send:
    return w.send("POST", LI, "/rest/posts", json=_li_post(w))


@endpoint(LI, K.READ, "author-finder")
async def _li_finder(w: World) -> Send:
    return w.send("GET", LI, "/rest/posts", params={"q": "author", "author": w.node(LI)})


@endpoint(LI, K.READ, "post-by-urn")
async def _li_read(w: World) -> Send:
    _, _, headers = await w.now("POST", LI, "/rest/posts", json=_li_post(w))
    return w.send("GET", LI, f"/rest/posts/{quote(headers['x-restli-id'], safe='')}")


@endpoint(LI, K.UPLOAD, "initialize-upload")
async def _li_initialize(w: World) -> Send:
    return w.send(
        "POST",
        LI,
        "/rest/images",
        params={"action": "initializeUpload"},
        json={"initializeUploadRequest": {"owner": w.node(LI)}},
    )


@endpoint(LI, K.UPLOAD, "image-bytes", ok=201)
async def _li_image(w: World) -> Send:
    upload = await _li_upload(w)
    return w.send("PUT", LI, upload["uploadUrl"], data=b"\xff\xd8 an image")


# -- YouTube ----------------------------------------------------------------------------------


def _session_start(w: World) -> Send:
    return w.send(
        "POST",
        YT,
        UPLOAD,
        params={"uploadType": "resumable", "part": "snippet,status"},
        json={"snippet": {"title": _tag()}, "status": {"privacyStatus": "private"}},
        headers={"X-Upload-Content-Type": "video/*", "X-Upload-Content-Length": str(len(VIDEO))},
    )


async def _session(w: World) -> str:
    answer = await _session_start(w)()
    assert answer[0] == 200, answer
    return str(answer[2]["Location"])


@endpoint(YT, K.PUBLISH, "upload-chunk", ok=201)
async def _yt_chunk(w: World) -> Send:
    session = await _session(w)
    return w.send("PUT", YT, session, data=VIDEO, headers={"Content-Type": "video/*"})


@endpoint(YT, K.UPLOAD, "session-start")
async def _yt_start(w: World) -> Send:
    return _session_start(w)


@endpoint(YT, K.STATUS, "upload-status-query", ok=308)
async def _yt_status(w: World) -> Send:
    session = await _session(w)
    return w.send("PUT", YT, session, data=b"", headers={"Content-Range": f"bytes */{len(VIDEO)}"})


@endpoint(YT, K.READ, "channels")
async def _yt_channels(w: World) -> Send:
    return w.send("GET", YT, "/youtube/v3/channels", params={"part": "id", "mine": "true"})


@endpoint(YT, K.READ, "playlistItems")
async def _yt_playlist(w: World) -> Send:
    playlist = "UU" + w.node(YT).removeprefix("UC")
    return w.send(
        "GET", YT, "/youtube/v3/playlistItems", params={"part": "snippet", "playlistId": playlist}
    )


@endpoint(YT, K.READ, "videos")
async def _yt_videos(w: World) -> Send:
    return w.send("GET", YT, "/youtube/v3/videos", params={"part": "id", "id": "unknown0000"})


@endpoint(YT, K.TOKEN, "token-refresh")
async def _yt_token(w: World) -> Send:
    creds = w.accounts[YT].credentials
    form = {"grant_type": "refresh_token", **{k: creds[k] for k in _REFRESH_KEYS}}
    url = w.sim.urls.youtube_token

    def go() -> Awaitable[Answer]:
        return call(w.http, "POST", url, data=form)

    return go


_REFRESH_KEYS = ("refresh_token", "client_id", "client_secret")


# -- the faults, one endpoint at a time -------------------------------------------------------


@pytest.fixture
async def world(http: aiohttp.ClientSession) -> AsyncIterator[World]:
    async with Simulator(exact_config()) as sim:
        accounts = {platform: sim.add_account(platform) for platform in Platform}
        yield World(sim, sent_once(http), accounts)


def _faults(kind: CallKind, fault: str) -> FaultConfig:
    """``fault`` on every call of ``kind``, and nothing else."""
    rate = {f"{fault}_rate": 1.0}
    knobs: dict[str, Any] = {"hang_s": HANG_S, "graph_throttle_codes": (GRAPH_THROTTLE,)}
    if kind is K.PUBLISH:
        return FaultConfig(**rate, **knobs)
    return FaultConfig(calls={kind: CallFaults(**rate)}, **knobs)


def _audit_key(kind: CallKind, fault: str) -> str:
    return fault if kind is K.PUBLISH else f"{kind.value}:{fault}"


def _check_error(platform: Platform, answer: Answer) -> None:
    """The platform's own transient error."""
    status, body, _ = answer
    if platform is FB:
        error = body["error"]
        assert (status, error["code"], error["is_transient"]) == (500, 2, True)
    elif platform is IG:  # Instagram's documented server error
        error = body["error"]
        assert (status, error["code"], error["error_subcode"]) == (400, -1, 2207001)
    elif platform is LI:
        assert (status, body["status"]) == (503, 503)
    else:
        assert (status, body["error"]["errors"][0]["reason"]) == (503, "backendError")


def _check_throttle(platform: Platform, answer: Answer) -> None:
    """The platform's own throttle."""
    status, body, _ = answer
    if platform in (FB, IG):
        error = body["error"]
        assert (status, error["code"], error["is_transient"]) == (400, GRAPH_THROTTLE, True)
    elif platform is LI:
        assert (status, body["status"]) == (429, 429)
    else:
        assert (status, body["error"]["errors"][0]["reason"]) == (403, "rateLimitExceeded")


def _others(target: Endpoint) -> list[Endpoint]:
    """One endpoint of every other kind of call on the target's platform."""
    chosen: dict[CallKind, Endpoint] = {}
    for candidate in ENDPOINTS:
        if candidate.platform is target.platform and candidate.kind is not target.kind:
            chosen.setdefault(candidate.kind, candidate)
    return list(chosen.values())


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("target", ENDPOINTS, ids=str)
async def test_a_kind_of_call_fails_alone(world: World, target: Endpoint, fault: str) -> None:
    platform, kind = target.platform, target.kind
    send = await target.prepare(world)
    others = [(other, await other.prepare(world)) for other in _others(target)]
    world.sim.set_faults(platform, _faults(kind, fault))

    started = time.monotonic()
    if fault in ("drop", "timeout"):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await send()
        if fault == "timeout":
            assert time.monotonic() - started >= HANG_S
    elif fault == "error":
        _check_error(platform, await send())
    else:
        _check_throttle(platform, await send())
        (refusal,) = world.sim.audit.refusals(platform)
        assert refusal.rule == "injected"
    injected = {_audit_key(kind, fault): 1}
    assert world.sim.audit.injected(platform) == injected

    for other, go in others:
        status, _, _ = await go()
        assert status == other.ok, f"{other} answered {status}"
    assert world.sim.audit.injected(platform) == injected
    assert world.sim.audit.violations() == []


def test_every_kind_of_call_is_served_somewhere() -> None:
    """The table above covers every kind on every platform that has it."""
    kinds = {(e.platform, e.kind) for e in ENDPOINTS}
    assert {kind for _, kind in kinds} == set(CallKind)
    assert {kind for platform, kind in kinds if platform is YT} == {
        K.PUBLISH,
        K.UPLOAD,
        K.STATUS,
        K.READ,
        K.TOKEN,
    }


# -- a dropped set-up call is carried out -----------------------------------------------------


def _dropped(kind: CallKind) -> FaultConfig:
    return FaultConfig(calls={kind: CallFaults(drop_rate=1.0)})


async def test_a_dropped_container_creation_makes_the_container(
    http: aiohttp.ClientSession,
) -> None:
    config = exact_config(instagram=InstagramSim(containers_per_24h=1))
    async with Simulator(config) as sim:
        w = World(sim, sent_once(http), {IG: sim.add_account(IG)})
        create = await _ig_container(w)
        sim.set_faults(IG, _dropped(K.CONTAINER))
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await create()
        sim.set_faults(IG, FaultConfig())
        # The orphan took the day's one container: the next is over the limit.
        status, body, _ = await (await _ig_container(w))()
        assert (status, body["error"]["error_subcode"]) == (400, 2207042)
        assert [v.rule for v in sim.audit.violations()] == ["containers"]
        assert sim.audit.posts() == []


async def test_a_dropped_upload_session_start_is_charged(http: aiohttp.ClientSession) -> None:
    config = exact_config(youtube=YouTubeSim(insert_calls_per_day=1))
    async with Simulator(config) as sim:
        w = World(sim, sent_once(http), {YT: sim.add_account(YT)})
        sim.set_faults(YT, _dropped(K.UPLOAD))
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await _session_start(w)()
        sim.set_faults(YT, FaultConfig())
        # The orphan session was the day's one videos.insert.
        status, body, _ = await _session_start(w)()
        assert (status, body["error"]["errors"][0]["reason"]) == (403, "quotaExceeded")
        assert sim.audit.posts() == []


async def test_a_dropped_image_upload_keeps_the_image(http: aiohttp.ClientSession) -> None:
    async with Simulator(exact_config()) as sim:
        w = World(sim, sent_once(http), {LI: sim.add_account(LI)})
        upload = await _li_upload(w)
        sim.set_faults(LI, _dropped(K.UPLOAD))
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await w.send("PUT", LI, upload["uploadUrl"], data=b"\xff\xd8 an image")()
        sim.set_faults(LI, FaultConfig())
        # The bytes arrived before the connection closed: a post can use the image.
        media = {"media": {"id": upload["image"], "altText": "x"}}
        status, _, _ = await w.send("POST", LI, "/rest/posts", json=_li_post(w, content=media))()
        assert status == 201
        (post,) = sim.audit.posts(LI)
        assert post.media_bytes == len(b"\xff\xd8 an image")


async def test_a_dropped_read_is_not_carried_out(http: aiohttp.ClientSession) -> None:
    config = exact_config(instagram=InstagramSim(calls_per_24h=2))
    async with Simulator(config) as sim:
        w = World(sim, sent_once(http), {IG: sim.add_account(IG)})
        listing = await _ig_media(w)
        sim.set_faults(IG, _dropped(K.READ))
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await listing()
        sim.set_faults(IG, FaultConfig())
        # Never handled, so never counted: both of the day's two calls are left.
        for _ in range(2):
            assert (await listing())[0] == 200
        assert (await listing())[0] == 400
