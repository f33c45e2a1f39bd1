"""The simulator's post listings, the way look-ups page through them: Graph edges with
``since``/``until`` and cursors, LinkedIn's author finder by offset, YouTube's uploads
playlist by page token. All newest first; a post made while a client pages never makes it
skip one that was already listed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from herald.config import LinkedInSettings
from herald.domain import Platform
from herald.simulator import (
    NO_LISTING_LAG,
    InstagramSim,
    LatencyModel,
    SimAccount,
    Simulator,
    SimulatorConfig,
    YouTubeSim,
    media_bytes,
)

NO_LATENCY = LatencyModel(median_s=0, p99_s=0)
GRAPH = [Platform.FACEBOOK, Platform.INSTAGRAM]
VIDEO_SIZE = 1000


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(
        latency=NO_LATENCY,
        listing_lag=NO_LISTING_LAG,
        instagram=InstagramSim(publishes_per_24h=1000, containers_per_24h=1000),
    )
    async with Simulator(config) as simulator:
        yield simulator


def bearer(account: SimAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.credentials['access_token']}"}


async def get(
    http: aiohttp.ClientSession, url: str | URL, account: SimAccount, **params: str
) -> tuple[int, Any]:
    async with http.get(url, params=params or None, headers=bearer(account)) as response:
        return response.status, await response.json()


# -- Graph: Facebook published_posts, Instagram media ---------------------------------------


async def graph_post(
    sim: Simulator, http: aiohttp.ClientSession, platform: Platform, account: SimAccount, n: int
) -> str:
    """Publish post ``n`` (text ``post n``); its id."""
    if platform is Platform.FACEBOOK:
        url = f"{sim.urls.facebook}/{account.external_id}/feed"
        async with http.post(url, json={"message": f"post {n}"}, headers=bearer(account)) as r:
            return str((await r.json())["id"])
    base = f"{sim.urls.instagram}/{account.external_id}"
    body = {"image_url": sim.media_url("image", f"{n}.jpg"), "caption": f"post {n}"}
    async with http.post(f"{base}/media", json=body, headers=bearer(account)) as r:
        container = (await r.json())["id"]
    async with http.post(
        f"{base}/media_publish", json={"creation_id": container}, headers=bearer(account)
    ) as r:
        return str((await r.json())["id"])


def listing_url(sim: Simulator, platform: Platform, account: SimAccount) -> str:
    if platform is Platform.FACEBOOK:
        return f"{sim.urls.facebook}/{account.external_id}/published_posts"
    return f"{sim.urls.instagram}/{account.external_id}/media"


@pytest.mark.parametrize("platform", GRAPH, ids=[p.value for p in GRAPH])
async def test_graph_cursor_paging(
    sim: Simulator, http: aiohttp.ClientSession, platform: Platform
) -> None:
    account = sim.add_account(platform)
    ids = [await graph_post(sim, http, platform, account, n) for n in range(7)]
    url = listing_url(sim, platform, account)
    status, page = await get(http, url, account, limit="3")
    assert status == 200
    seen = [item["id"] for item in page["data"]]
    assert set(page["paging"]["cursors"]) == {"before", "after"}
    following = page["paging"]["next"]
    assert following.startswith(url)
    assert URL(following).query["limit"] == "3"
    assert URL(following).query["after"] == page["paging"]["cursors"]["after"]
    # Posts made between two pages appear on no later page and push nothing out of one.
    newer = [await graph_post(sim, http, platform, account, n) for n in (7, 8)]
    while "next" in page["paging"]:
        status, page = await get(http, URL(page["paging"]["next"], encoded=True), account)
        assert status == 200
        seen += [item["id"] for item in page["data"]]
    assert seen == ids[::-1]  # every post once, newest first
    assert len(page["data"]) == 1  # pages of 3, 3 and 1
    _, first = await get(http, url, account, limit="100")
    assert [item["id"] for item in first["data"]] == (ids + newer)[::-1]
    assert "next" not in first["paging"]


@pytest.mark.parametrize("platform", GRAPH, ids=[p.value for p in GRAPH])
async def test_graph_since_and_until_bound_the_creation_time(
    sim: Simulator, http: aiohttp.ClientSession, platform: Platform
) -> None:
    account = sim.add_account(platform)
    old = [await graph_post(sim, http, platform, account, n) for n in range(3)]
    boundary = int(sim.advance_clock(100))
    new = [await graph_post(sim, http, platform, account, n) for n in range(3, 7)]
    url = listing_url(sim, platform, account)
    _, page = await get(http, url, account, since=str(boundary))
    assert [item["id"] for item in page["data"]] == new[::-1]
    _, page = await get(http, url, account, until=str(boundary - 1))
    assert [item["id"] for item in page["data"]] == old[::-1]
    # since applies to every page: the link carries it.
    _, page = await get(http, url, account, since=str(boundary), limit="3")
    assert len(page["data"]) == 3
    _, rest = await get(http, URL(page["paging"]["next"], encoded=True), account)
    assert [item["id"] for item in rest["data"]] == [new[0]]
    assert "next" not in rest["paging"]
    _, empty = await get(http, url, account, since=str(boundary + 3600))
    assert empty == {"data": [], "paging": {}}


@pytest.mark.parametrize("platform", GRAPH, ids=[p.value for p in GRAPH])
@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "many"},
        {"since": "yesterday"},
        {"after": "not-a-cursor"},
        {"before": "not-a-cursor"},
    ],
)
async def test_graph_listing_refuses_bad_parameters(
    sim: Simulator, http: aiohttp.ClientSession, platform: Platform, params: dict[str, str]
) -> None:
    account = sim.add_account(platform)
    await graph_post(sim, http, platform, account, 1)
    status, body = await get(http, listing_url(sim, platform, account), account, **params)
    assert (status, body["error"]["code"]) == (400, 100)


@pytest.mark.parametrize("platform", GRAPH, ids=[p.value for p in GRAPH])
async def test_graph_limit_above_the_maximum_is_cut_to_it(
    sim: Simulator, http: aiohttp.ClientSession, platform: Platform
) -> None:
    # Graph caps ``limit`` at an edge's maximum and still pages correctly (docs/graph-api/
    # results); it does not refuse the request.
    account = sim.add_account(platform)
    ids = [await graph_post(sim, http, platform, account, n) for n in range(102)]
    status, page = await get(http, listing_url(sim, platform, account), account, limit="500")
    assert status == 200
    assert [item["id"] for item in page["data"]] == ids[::-1][:100]
    _, rest = await get(http, URL(page["paging"]["next"], encoded=True), account)
    assert [item["id"] for item in rest["data"]] == ids[1::-1]


@pytest.mark.parametrize("platform", GRAPH, ids=[p.value for p in GRAPH])
async def test_graph_before_cursor_and_previous_link(
    sim: Simulator, http: aiohttp.ClientSession, platform: Platform
) -> None:
    account = sim.add_account(platform)
    ids = [await graph_post(sim, http, platform, account, n) for n in range(5)]
    url = listing_url(sim, platform, account)
    _, first = await get(http, url, account, limit="2")
    assert "previous" not in first["paging"]  # nothing newer than the newest page
    _, second = await get(http, URL(first["paging"]["next"], encoded=True), account)
    assert [item["id"] for item in second["data"]] == [ids[2], ids[1]]
    back = URL(second["paging"]["previous"], encoded=True)
    assert back.query["before"] == second["paging"]["cursors"]["before"]
    assert "after" not in back.query
    assert back.query["limit"] == "2"
    _, again = await get(http, back, account)
    assert again["data"] == first["data"]  # back to the newer page, newest first
    assert "previous" not in again["paging"]
    assert "next" in again["paging"]
    # A post made since the first page was read: the newest page now has one before it.
    newest = await graph_post(sim, http, platform, account, 5)
    _, again = await get(http, back, account)
    assert "previous" in again["paging"]
    _, top = await get(http, URL(again["paging"]["previous"], encoded=True), account)
    assert [item["id"] for item in top["data"]] == [newest]
    assert "previous" not in top["paging"]


# -- LinkedIn: the author finder --------------------------------------------------------------


def li_headers(account: SimAccount) -> dict[str, str]:
    return {
        **bearer(account),
        "LinkedIn-Version": LinkedInSettings().api_version,
        "X-Restli-Protocol-Version": "2.0.0",
    }


async def li_post(sim: Simulator, http: aiohttp.ClientSession, member: SimAccount, n: int) -> str:
    body = {
        "author": member.external_id,
        "commentary": f"post {n}",
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED"},
        "lifecycleState": "PUBLISHED",
    }
    async with http.post(
        f"{sim.urls.linkedin}/rest/posts", json=body, headers=li_headers(member)
    ) as response:
        assert response.status == 201
        return response.headers["x-restli-id"]


async def li_page(
    sim: Simulator, http: aiohttp.ClientSession, member: SimAccount, start: int, count: int
) -> dict[str, Any]:
    params = {
        "q": "author",
        "author": member.external_id,
        "count": str(count),
        "start": str(start),
        "sortBy": "LAST_MODIFIED",
    }
    async with http.get(
        f"{sim.urls.linkedin}/rest/posts", params=params, headers=li_headers(member)
    ) as response:
        assert response.status == 200
        return await response.json()  # type: ignore[no-any-return]


async def test_linkedin_offset_paging(sim: Simulator, http: aiohttp.ClientSession) -> None:
    member = sim.add_account(Platform.LINKEDIN)
    urns = [await li_post(sim, http, member, n) for n in range(7)]
    pages = [await li_page(sim, http, member, start, 3) for start in (0, 3, 6, 9)]
    assert [p["paging"] for p in pages] == [
        {"start": start, "count": 3, "total": 7, "links": []} for start in (0, 3, 6, 9)
    ]
    assert [len(p["elements"]) for p in pages] == [3, 3, 1, 0]
    listed = [e["id"] for p in pages for e in p["elements"]]
    assert listed == urns[::-1]
    modified = [e["lastModifiedAt"] for p in pages for e in p["elements"]]
    assert modified == sorted(modified, reverse=True)
    big = await li_page(sim, http, member, 0, 100)
    assert len(big["elements"]) == 7
    async with http.get(
        f"{sim.urls.linkedin}/rest/posts",
        params={"q": "author", "author": member.external_id, "count": "101"},
        headers=li_headers(member),
    ) as response:
        assert response.status == 400


# -- YouTube: the uploads playlist ------------------------------------------------------------


async def yt_upload(
    sim: Simulator, http: aiohttp.ClientSession, channel: SimAccount, n: int
) -> str:
    async with http.post(
        f"{sim.urls.youtube_upload}/upload/youtube/v3/videos",
        params={"uploadType": "resumable", "part": "snippet,status"},
        json={"snippet": {"title": f"video {n}"}, "status": {"privacyStatus": "public"}},
        headers={**bearer(channel), "X-Upload-Content-Length": str(VIDEO_SIZE)},
    ) as response:
        assert response.status == 200
        session = response.headers["Location"]
    data = media_bytes(f"video/{n}.mp4", VIDEO_SIZE)
    async with http.put(session, data=data, headers={"Content-Type": "video/mp4"}) as response:
        assert response.status == 201
        return str((await response.json())["id"])


async def yt_page(
    sim: Simulator, http: aiohttp.ClientSession, channel: SimAccount, **params: str
) -> tuple[int, Any]:
    playlist = "UU" + channel.external_id.removeprefix("UC")
    query = {"part": "snippet", "playlistId": playlist, **params}
    return await get(http, f"{sim.urls.youtube}/youtube/v3/playlistItems", channel, **query)


async def test_youtube_page_tokens_and_one_unit_a_page(http: aiohttp.ClientSession) -> None:
    # 4 units a day: three pages and one more call fit, the fifth call is over the quota.
    config = SimulatorConfig(
        latency=NO_LATENCY, listing_lag=NO_LISTING_LAG, youtube=YouTubeSim(units_per_day=4)
    )
    async with Simulator(config) as sim:
        channel = sim.add_account(Platform.YOUTUBE)
        videos = [await yt_upload(sim, http, channel, n) for n in range(7)]
        status, page = await yt_page(sim, http, channel, maxResults="3")
        assert status == 200
        assert page["pageInfo"] == {"totalResults": 7, "resultsPerPage": 3}
        listed = [item["snippet"]["resourceId"]["videoId"] for item in page["items"]]
        assert [item["snippet"]["position"] for item in page["items"]] == [0, 1, 2]
        await yt_upload(sim, http, channel, 7)  # a new upload between pages shifts nothing
        while "nextPageToken" in page:
            status, page = await yt_page(
                sim, http, channel, maxResults="3", pageToken=page["nextPageToken"]
            )
            assert status == 200
            listed += [item["snippet"]["resourceId"]["videoId"] for item in page["items"]]
        assert listed == videos[::-1]
        status, body = await yt_page(sim, http, channel, pageToken="bogus")
        assert status == 400
        assert body["error"]["errors"][0]["reason"] == "invalidPageToken"
        status, body = await yt_page(sim, http, channel)
        assert status == 403
        assert body["error"]["errors"][0]["reason"] == "quotaExceeded"
