"""The simulator put into the state a wire fixture needs (its ``situation``), no tests.

Each situation is set up through the simulator's own API and through plain HTTP requests,
the way a client would have brought the platform there, and yields the values of the
fixture's placeholders (``{page-id}``, ``{ig-container-id}``, ``{upload-id}``...) in that
world. A situation the simulator cannot reach is named in :data:`UNREACHABLE` with why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from herald.domain import Platform
from herald.simulator import (
    NO_LISTING_LAG,
    CallFaults,
    CallKind,
    FaultConfig,
    LatencyModel,
    SimAccount,
    Simulator,
    SimulatorConfig,
)
from tests.integration.sim_calls import linkedin_post
from tests.wire.fixtures import Fixture

__all__ = ["UNREACHABLE", "World", "config_for", "prepare"]

NO_LATENCY = LatencyModel(median_s=0, p99_s=0)
#: Situations the simulator has no way into: the fixture is expected to fail until it has.
UNREACHABLE: dict[str, str] = {}
#: Limits a situation needs lowered before the simulator starts.
_CONFIG: dict[str, dict[str, Any]] = {
    "publish_limit_reached": {"instagram": {"publishes_per_24h": 1}},
    "container_in_progress": {"instagram": {"image_processing_s": 3600.0}},
    "member_day_limit": {"linkedin": {"member_posts_per_day": 1}},
    "app_day_limit": {"linkedin": {"app_posts_per_day": 1}},
    "quota_used_up": {"youtube": {"insert_calls_per_day": 1}},
    # One call a day: creating the container spends it, the status poll is over the limit.
    "account_calls_used_up": {"instagram": {"calls_per_24h": 1}},
    "channel_upload_cap": {"youtube": {"uploads_per_channel_per_day": 1}},
}
_THROTTLE_CODES = {"page_throttled": 32, "buc_throttled": 80001, "app_throttled": 4}
#: Situations where every call of one kind that creates no post fails, and how.
_CALL_FAULTS = {
    "read_fault": (CallKind.READ, CallFaults(error_rate=1.0)),
    "status_fault": (CallKind.STATUS, CallFaults(error_rate=1.0)),
    "upload_throttled": (CallKind.UPLOAD, CallFaults(throttle_rate=1.0)),
}
UNIT = 256 * 1024


def config_for(fixture: Fixture) -> SimulatorConfig:
    # Listings show a post at once: a fixture's listing page holds the post just made.
    situation = _CONFIG.get(fixture.situation, {})
    return SimulatorConfig(latency=NO_LATENCY, listing_lag=NO_LISTING_LAG, **situation)


@dataclass
class World:
    """A running simulator, one client session, and the fixture's placeholder values."""

    sim: Simulator
    http: aiohttp.ClientSession
    platform: Platform
    account: SimAccount
    values: dict[str, str] = field(default_factory=dict)
    #: The bearer token the fixture's request carries (a bad one for some situations).
    token: str = ""

    @property
    def base(self) -> str:
        return getattr(self.sim.urls, self.platform.value)  # type: ignore[no-any-return]

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {**self.auth(), **kwargs.pop("headers", {})}
        async with self.http.request(
            method, f"{self.base}{path}", headers=headers, **kwargs
        ) as resp:
            await resp.read()
            return resp

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.auth(), **kwargs.pop("headers", {})}
        async with self.http.request(
            method, f"{self.base}{path}", headers=headers, **kwargs
        ) as resp:
            assert resp.status < 300, (resp.status, await resp.text())
            return await resp.json()


Step = Callable[[World, Fixture], Awaitable[None]]


async def prepare(sim: Simulator, http: aiohttp.ClientSession, fixture: Fixture) -> World:
    platform = Platform(fixture.platform)
    account = sim.add_account(platform)
    world = World(sim, http, platform, account, token=account.credentials["access_token"])
    world.values.update(_base_values(world))
    step = _STEPS.get((fixture.platform, fixture.situation)) or _COMMON[fixture.situation]
    await step(world, fixture)
    return world


def _base_values(world: World) -> dict[str, str]:
    ident = world.account.external_id
    month = datetime.fromtimestamp(world.sim.clock.now(), UTC).strftime("%Y%m")
    return {
        "{page-id}": ident,
        "{other-page-id}": "1000000000001",
        "{ig-user-id}": ident,
        "{author-urn}": ident,
        "{version}": month,
        "{retired-version}": "202301",
        "{channel-id}": ident,
        "{uploads-playlist-id}": "UU" + ident.removeprefix("UC"),
        "{unix-24h-ago}": str(int(world.sim.clock.now()) - 3600),
    }


# -- common -------------------------------------------------------------------------------------
async def _nothing(world: World, fixture: Fixture) -> None:
    return None


async def _revoked(world: World, fixture: Fixture) -> None:
    world.sim.revoke(world.platform, world.account.external_id)


async def _unknown_token(world: World, fixture: Fixture) -> None:
    world.token = "not-a-token-the-platform-issued"


async def _transient(world: World, fixture: Fixture) -> None:
    if world.platform is Platform.INSTAGRAM:
        await _container(world, fixture)
    world.sim.set_faults(world.platform, FaultConfig(error_rate=1.0))


async def _throttled(world: World, fixture: Fixture) -> None:
    code = _THROTTLE_CODES[fixture.situation]
    faults = FaultConfig(throttle_rate=1.0, graph_throttle_codes=(code,), regain_minutes=5)
    world.sim.set_faults(world.platform, faults)


async def _short_throttle(world: World, fixture: Fixture) -> None:
    # The platform's own short throttle on the call that creates the post (no Graph code).
    world.sim.set_faults(world.platform, FaultConfig(throttle_rate=1.0))


async def _call_fault(world: World, fixture: Fixture) -> None:
    kind, rates = _CALL_FAULTS[fixture.situation]
    if kind is CallKind.STATUS:
        await _container(world, fixture)
    world.sim.set_faults(world.platform, FaultConfig(calls={kind: rates}))


_COMMON: dict[str, Step] = {
    "account": _nothing,
    "revoked_token": _revoked,
    "unknown_token": _unknown_token,
    "transient_fault": _transient,
    "page_throttled": _throttled,
    "buc_throttled": _throttled,
    "app_throttled": _throttled,
    "short_throttle": _short_throttle,
    "read_fault": _call_fault,
    "status_fault": _call_fault,
    "upload_throttled": _call_fault,
    "unknown_node": _nothing,
    "retired_version": _nothing,  # the request's {retired-version} is enough
}


# -- Facebook -----------------------------------------------------------------------------------
async def _fb_post(world: World, message: str) -> None:
    await world.json("POST", f"/{world.account.external_id}/feed", json={"message": message})


async def _fb_two_posts(world: World, fixture: Fixture) -> None:
    await _fb_post(world, "An older post")
    await _fb_post(world, "Become a Facebook developer!")


async def _fb_one_post(world: World, fixture: Fixture) -> None:
    path = f"/{world.account.external_id}/feed"
    answer = await world.json("POST", path, json={"message": "Become a Facebook developer!"})
    world.values["{page-post-id}"] = answer["id"]


async def _fb_three_posts_paged(world: World, fixture: Fixture) -> None:
    # The request reads the middle page: a newer post before it, an older one after it.
    for message in ("An older post", "Become a Facebook developer!", "A newer post"):
        await _fb_post(world, message)
    path = f"/{world.account.external_id}/published_posts"
    first = await world.json("GET", path, params={"limit": "1"})
    world.values["{after-cursor}"] = first["paging"]["cursors"]["after"]


async def _fb_duplicate(world: World, fixture: Fixture) -> None:
    await _fb_post(world, fixture.request.body["message"])


# -- Instagram ----------------------------------------------------------------------------------
async def _create(world: World, caption: str = "#BronzFonz") -> str:
    body = {"image_url": "https://www.example.com/images/bronz-fonz.jpg", "caption": caption}
    answer = await world.json("POST", f"/{world.account.external_id}/media", json=body)
    return str(answer["id"])


async def _publish(world: World, container: str) -> None:
    path = f"/{world.account.external_id}/media_publish"
    await world.json("POST", path, json={"creation_id": container})


async def _container(world: World, fixture: Fixture) -> None:
    world.values["{ig-container-id}"] = await _create(world)


async def _two_media(world: World, fixture: Fixture) -> None:
    for caption in ("An older post", "#BronzFonz"):
        await _publish(world, await _create(world, caption))


async def _image_too_large(world: World, fixture: Fixture) -> None:
    url = world.sim.media_url("image", "too-large.jpg", size=9 * 1024 * 1024)
    world.values["{too-large-image-url}"] = url


async def _spam_restricted(world: World, fixture: Fixture) -> None:
    await _container(world, fixture)
    world.sim.restrict(world.platform, world.account.external_id)


async def _publish_limit(world: World, fixture: Fixture) -> None:
    await _publish(world, await _create(world))
    await _container(world, fixture)


# -- LinkedIn -----------------------------------------------------------------------------------
def _li_headers(world: World) -> dict[str, str]:
    return {"LinkedIn-Version": world.values["{version}"], "X-Restli-Protocol-Version": "2.0.0"}


async def _li_post(world: World, commentary: str) -> None:
    body = linkedin_post(world.account.external_id, commentary)
    resp = await world.call("POST", "/rest/posts", json=body, headers=_li_headers(world))
    assert resp.status == 201, resp.status


async def _li_two_posts(world: World, fixture: Fixture) -> None:
    await _li_post(world, "An older post")
    await _li_post(world, "Sample text Post")


async def _li_posted_once(world: World, fixture: Fixture) -> None:
    await _li_post(world, fixture.request.body["commentary"])


async def _li_other_author(world: World, fixture: Fixture) -> None:
    world.values["{other-author-urn}"] = world.sim.add_account(Platform.LINKEDIN).external_id


async def _li_app_limit(world: World, fixture: Fixture) -> None:
    other = world.sim.add_account(Platform.LINKEDIN)
    token = world.token
    world.token = other.credentials["access_token"]
    world.account, mine = other, world.account
    await _li_post(world, "The app's post of the day")
    world.account, world.token = mine, token


# -- YouTube ------------------------------------------------------------------------------------
def _total(fixture: Fixture) -> int:
    declared = fixture.request.headers.get("Content-Range", "bytes */1048576")
    return int(declared.rsplit("/", 1)[1])


async def _start(world: World, total: int, title: str = "My video title") -> str:
    headers = {"X-Upload-Content-Length": str(total), "X-Upload-Content-Type": "video/*"}
    body = {"snippet": {"title": title, "description": "A video"}, "status": {}}
    path = "/upload/youtube/v3/videos?uploadType=resumable&part=snippet,status"
    resp = await world.call("POST", path, json=body, headers=headers)
    assert resp.status == 200, resp.status
    return resp.headers["Location"].rsplit("upload_id=", 1)[1].split("&", 1)[0]


async def _put(world: World, upload_id: str, first: int, size: int, total: int) -> None:
    headers = {"Content-Range": f"bytes {first}-{first + size - 1}/{total}"}
    path = f"/upload/youtube/v3/videos?uploadType=resumable&upload_id={upload_id}"
    resp = await world.call("PUT", path, data=b"\0" * size, headers=headers)
    assert resp.status in (200, 201, 308), resp.status


async def _session(world: World, fixture: Fixture) -> None:
    world.values["{upload-id}"] = await _start(world, _total(fixture))


async def _half_received(world: World, fixture: Fixture) -> None:
    total = _total(fixture)
    await _session(world, fixture)
    await _put(world, world.values["{upload-id}"], 0, total // 2, total)


async def _faulty_session(world: World, fixture: Fixture) -> None:
    await _session(world, fixture)
    world.sim.set_faults(Platform.YOUTUBE, FaultConfig(error_rate=1.0))


async def _refresh_revoked(world: World, fixture: Fixture) -> None:
    # The request carries the channel's own refresh grant, which the user has since revoked.
    credentials = world.account.credentials
    for name in ("refresh_token", "client_id", "client_secret"):
        world.values["{" + name.replace("_", "-") + "}"] = credentials[name]
    world.sim.revoke(world.platform, world.account.external_id)


async def _one_session(world: World, fixture: Fixture) -> None:
    await _start(world, UNIT)


async def _two_videos(world: World, fixture: Fixture) -> None:
    for title in ("An older video", "My video title"):
        await _put(world, await _start(world, UNIT, title), 0, UNIT, UNIT)


_STEPS: dict[tuple[str, str], Step] = {
    ("facebook", "two_posts"): _fb_two_posts,
    ("facebook", "one_post"): _fb_one_post,
    ("facebook", "three_posts_paged"): _fb_three_posts_paged,
    ("facebook", "duplicate"): _fb_duplicate,
    ("instagram", "container"): _container,
    ("instagram", "container_finished"): _container,
    ("instagram", "container_in_progress"): _container,
    ("instagram", "two_media"): _two_media,
    ("instagram", "publish_limit_reached"): _publish_limit,
    ("instagram", "image_too_large"): _image_too_large,
    ("instagram", "spam_restricted"): _spam_restricted,
    ("instagram", "account_calls_used_up"): _container,
    ("linkedin", "two_posts"): _li_two_posts,
    ("linkedin", "duplicate"): _li_posted_once,
    ("linkedin", "member_day_limit"): _li_posted_once,
    ("linkedin", "app_day_limit"): _li_app_limit,
    ("linkedin", "other_author"): _li_other_author,
    ("youtube", "upload_session"): _session,
    ("youtube", "upload_half_received"): _half_received,
    ("youtube", "upload_session_faulty"): _faulty_session,
    ("youtube", "quota_used_up"): _one_session,
    ("youtube", "channel_upload_cap"): _one_session,
    ("youtube", "refresh_token_revoked"): _refresh_revoked,
    ("youtube", "two_videos"): _two_videos,
}
