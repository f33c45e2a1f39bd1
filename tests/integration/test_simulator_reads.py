"""Reads by id and the Page listings, served by the simulator with the platforms' shapes: a
Facebook Page post and the ``feed``/``posts`` edges, an Instagram media, YouTube's
``videos.list``, LinkedIn's post by URN. A read by id finds a new post at once, while
listings show it after the listing lag; each read is a READ call for faults and is metered
as the platform meters it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from herald.config import LinkedInSettings
from herald.domain import Platform
from herald.simulator import (
    CallFaults,
    CallKind,
    FacebookSim,
    FaultConfig,
    InstagramSim,
    ListingLag,
    SimAccount,
    Simulator,
    SimulatorConfig,
    YouTubeSim,
)
from tests.integration.sim_calls import call, exact_config, linkedin_post

FB, IG, LI, YT = Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN, Platform.YOUTUBE
#: Every new post lags 60 s behind in the listings.
LAG = ListingLag(median_s=60.0, p99_s=60.0, max_s=60.0)
READ_ERRORS = FaultConfig(calls={CallKind.READ: CallFaults(error_rate=1.0)})


def config(**overrides: Any) -> SimulatorConfig:
    return exact_config(listing_lag=LAG, **overrides)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config()) as simulator:
        yield simulator


# -- Facebook -----------------------------------------------------------------------------------


async def test_page_post_read_by_id_at_once(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page = sim.add_account(FB)
    base = f"{sim.urls.facebook}/{page.external_id}"
    _, body, _ = await call(http, "POST", f"{base}/feed", page, json={"message": "hello"})
    post_id = body["id"]
    for edge in ("published_posts", "feed", "posts"):
        status, listing, _ = await call(http, "GET", f"{base}/{edge}", page)
        assert (status, listing["data"]) == (200, [])  # not listed yet
    status, post, _ = await call(http, "GET", f"{sim.urls.facebook}/{post_id}", page)
    assert status == 200
    assert (post["id"], post["message"]) == (post_id, "hello")
    assert set(post) == {"id", "message", "created_time"}
    _, post, _ = await call(
        http, "GET", f"{sim.urls.facebook}/{post_id}", page, params={"fields": "id"}
    )
    assert post == {"id": post_id}

    sim.advance_clock(61)
    for edge in ("published_posts", "feed", "posts"):
        _, listing, _ = await call(http, "GET", f"{base}/{edge}", page)
        assert [item["id"] for item in listing["data"]] == [post_id]


async def test_page_post_read_refusals_and_faults(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page, other = sim.add_account(FB), sim.add_account(FB)
    _, body, _ = await call(
        http, "POST", f"{sim.urls.facebook}/{page.external_id}/feed", page, json={"message": "m"}
    )
    url = f"{sim.urls.facebook}/{body['id']}"
    status, body, _ = await call(http, "GET", url, other)  # another Page's token
    error = body["error"]
    assert (status, error["type"], error["code"], error["error_subcode"]) == (
        400,
        "GraphMethodException",
        100,
        33,
    )
    sim.set_faults(FB, READ_ERRORS)
    status, body, _ = await call(http, "GET", url, page)
    assert (status, body["error"]["code"]) == (500, 2)


async def test_page_post_reads_count_against_the_limits(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(facebook=FacebookSim(app_daily_active_users=1))) as sim:
        page = sim.add_account(FB)
        _, body, _ = await call(
            http,
            "POST",
            f"{sim.urls.facebook}/{page.external_id}/feed",
            page,
            json={"message": "m"},
        )
        url = f"{sim.urls.facebook}/{body['id']}"
        for _ in range(199):  # 200 calls an hour, the post included
            status, _, headers = await call(http, "GET", url, page)
            assert status == 200
        assert json.loads(headers["X-Business-Use-Case-Usage"])[page.external_id][0]["type"] == (
            "pages"
        )
        status, body, _ = await call(http, "GET", url, page)
        assert (status, body["error"]["code"]) == (400, 4)


# -- Instagram ----------------------------------------------------------------------------------


async def ig_publish(sim: Simulator, http: aiohttp.ClientSession, user: SimAccount) -> str:
    base = f"{sim.urls.instagram}/{user.external_id}"
    image = {"image_url": sim.media_url("image", "a.jpg"), "caption": "a caption"}
    _, body, _ = await call(http, "POST", f"{base}/media", user, json=image)
    _, body, _ = await call(
        http, "POST", f"{base}/media_publish", user, json={"creation_id": body["id"]}
    )
    return str(body["id"])


async def test_instagram_media_read_by_id(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(instagram=InstagramSim(calls_per_24h=100))) as sim:
        user, other = sim.add_account(IG), sim.add_account(IG)
        media = await ig_publish(sim, http, user)
        _, listing, _ = await call(
            http, "GET", f"{sim.urls.instagram}/{user.external_id}/media", user
        )
        assert listing["data"] == []  # the listing lags
        url = f"{sim.urls.instagram}/{media}"
        status, body, headers = await call(http, "GET", url, user)
        assert (status, body) == (200, {"id": media})  # no fields: only the id
        usage = json.loads(headers["X-Business-Use-Case-Usage"])[user.external_id][0]
        assert (usage["type"], usage["call_count"]) == ("instagram", 4)  # the 4th call
        fields = "id,caption,timestamp,media_type,permalink"
        _, body, _ = await call(http, "GET", url, user, params={"fields": fields})
        assert set(body) == set(fields.split(","))
        assert (body["caption"], body["media_type"]) == ("a caption", "IMAGE")
        assert body["permalink"].startswith("https://www.instagram.com/p/")
        status, body, _ = await call(http, "GET", url, other)
        assert (status, body["error"]["code"], body["error"]["error_subcode"]) == (400, 100, 33)
        sim.set_faults(IG, READ_ERRORS)
        status, body, _ = await call(http, "GET", url, user)
        assert (status, body["error"]["code"]) == (400, -1)


# -- YouTube ------------------------------------------------------------------------------------


async def upload(sim: Simulator, http: aiohttp.ClientSession, channel: SimAccount) -> str:
    token = {"Authorization": f"Bearer {channel.credentials['access_token']}"}
    async with http.post(
        f"{sim.urls.youtube_upload}/upload/youtube/v3/videos",
        params={"uploadType": "resumable", "part": "snippet,status"},
        json={"snippet": {"title": "My video"}, "status": {"privacyStatus": "private"}},
        headers={**token, "X-Upload-Content-Type": "video/*", "X-Upload-Content-Length": "10"},
    ) as response:
        session = response.headers["Location"]
    async with http.put(session, data=b"0123456789", headers={"Content-Type": "video/mp4"}) as r:
        return str((await r.json())["id"])


async def test_youtube_videos_list_by_id(http: aiohttp.ClientSession) -> None:
    youtube = YouTubeSim(quota_model="units", units_per_day=1603, insert_cost_units=1600)
    async with Simulator(config(youtube=youtube)) as sim:
        channel, other = sim.add_account(YT), sim.add_account(YT)
        video = await upload(sim, http, channel)
        url = f"{sim.urls.youtube}/youtube/v3/videos"
        params = {"id": f"{video},unknown0000", "part": "snippet,status"}
        status, body, _ = await call(http, "GET", url, channel, params=params)
        assert status == 200
        assert body["kind"] == "youtube#videoListResponse"
        [item] = body["items"]  # the unknown id is left out
        assert (item["kind"], item["id"]) == ("youtube#video", video)
        assert (item["snippet"]["title"], item["status"]["privacyStatus"]) == (
            "My video",
            "private",
        )
        assert body["pageInfo"] == {"totalResults": 1, "resultsPerPage": 1}
        _, body, _ = await call(http, "GET", url, other, params=params)
        assert body["items"] == []  # another channel's private video
        # 1 unit a call from the project's quota: the upload's 1600 and the three reads
        # above fill it, so the next read is refused.
        status, body, _ = await call(http, "GET", url, channel, params=params)
        assert status == 200
        status, body, _ = await call(http, "GET", url, channel, params=params)
        assert (status, body["error"]["errors"][0]["reason"]) == (403, "quotaExceeded")


async def test_youtube_videos_list_is_a_read_for_faults(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    channel = sim.add_account(YT)
    video = await upload(sim, http, channel)
    sim.set_faults(YT, READ_ERRORS)
    url = f"{sim.urls.youtube}/youtube/v3/videos"
    status, _, _ = await call(http, "GET", url, channel, params={"id": video, "part": "id"})
    assert status >= 500


# -- LinkedIn -----------------------------------------------------------------------------------


async def test_linkedin_post_read_by_urn(sim: Simulator, http: aiohttp.ClientSession) -> None:
    member, other = sim.add_account(LI), sim.add_account(LI)
    li = {"LinkedIn-Version": LinkedInSettings().api_version, "X-Restli-Protocol-Version": "2.0.0"}
    post = linkedin_post(member.external_id, "hello")
    async with http.post(
        f"{sim.urls.linkedin}/rest/posts",
        json=post,
        headers={"Authorization": f"Bearer {member.credentials['access_token']}", **li},
    ) as response:
        urn = response.headers["x-restli-id"]
    finder = {"q": "author", "author": member.external_id}
    _, listing, _ = await call(
        http, "GET", f"{sim.urls.linkedin}/rest/posts", member, params=finder, headers=li
    )
    assert listing["elements"] == []  # the finder lags
    url = f"{sim.urls.linkedin}/rest/posts/{quote(urn, safe='')}"
    status, body, _ = await call(http, "GET", url, member, headers=li)
    assert status == 200
    assert (body["id"], body["author"], body["commentary"]) == (urn, member.external_id, "hello")
    assert body["lifecycleState"] == "PUBLISHED"
    status, _, _ = await call(http, "GET", url, other, headers=li)
    assert status == 403
    missing = quote("urn:li:share:1", safe="")
    status, _, _ = await call(
        http, "GET", f"{sim.urls.linkedin}/rest/posts/{missing}", member, headers=li
    )
    assert status == 404
    sim.set_faults(LI, READ_ERRORS)
    status, _, _ = await call(http, "GET", url, member, headers=li)
    assert status >= 500
