"""The simulator's Facebook and Instagram (Graph API), driven with plain HTTP requests."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from herald.domain import Platform
from herald.simulator import (
    FacebookSim,
    InstagramSim,
    SimAccount,
    Simulator,
    SimulatorConfig,
)
from tests.integration.sim_calls import call, exact_config

FB = Platform.FACEBOOK
IG = Platform.INSTAGRAM
GRAPH_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000$")


def config(**overrides: Any) -> SimulatorConfig:
    return exact_config(**overrides)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config()) as simulator:
        yield simulator


def graph_code(body: dict[str, Any]) -> tuple[int, int | None]:
    return body["error"]["code"], body["error"].get("error_subcode")


# -- Facebook ---------------------------------------------------------------------------------


async def test_feed_post_and_lookup(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page = sim.add_account(FB)
    assert page.external_id.isdigit()
    base = f"{sim.urls.facebook}/{page.external_id}"

    status, body, _ = await call(
        http, "POST", f"{base}/feed", page, json={"message": "hello", "link": "https://e.x/a"}
    )
    assert status == 200
    assert re.fullmatch(rf"{page.external_id}_\d+", body["id"])

    status, listing, _ = await call(
        http,
        "GET",
        f"{base}/published_posts",
        page,
        params={"fields": "id,message,created_time", "limit": "25"},
    )
    assert status == 200
    assert set(listing["paging"]) == {"cursors"}  # one page only: no next link
    [post] = listing["data"]
    assert post["id"] == body["id"]
    assert post["message"] == "hello"
    assert GRAPH_TIME.match(post["created_time"])
    [record] = sim.audit.posts(FB)
    assert (record.account, record.post_id, record.text, record.delivered) == (
        page.external_id,
        body["id"],
        "hello",
        True,
    )


async def test_any_graph_version_and_query_token(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page = sim.add_account(FB)
    origin = sim.urls.facebook.rsplit("/", 1)[0]
    url = f"{origin}/v19.0/{page.external_id}/feed"
    status, body, _ = await call(
        http,
        "POST",
        url,
        params={"access_token": page.credentials["access_token"]},
        json={"message": "versioned"},
    )
    assert status == 200, body


async def test_photos_single_and_multi(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page = sim.add_account(FB)
    base = f"{sim.urls.facebook}/{page.external_id}"
    image = sim.media_url("image", "p1.jpg")

    status, single, _ = await call(
        http,
        "POST",
        f"{base}/photos",
        page,
        json={"url": image, "caption": "one photo", "published": True},
    )
    assert status == 200
    assert single["id"].isdigit()
    assert single["post_id"].startswith(f"{page.external_id}_")

    ids = []
    for n in range(2):
        status, body, _ = await call(
            http,
            "POST",
            f"{base}/photos",
            page,
            json={"url": sim.media_url("image", f"m{n}.jpg"), "published": False},
        )
        assert status == 200
        assert set(body) == {"id"}
        ids.append(body["id"])
    attached = [{"media_fbid": i} for i in ids]
    status, feed, _ = await call(
        http,
        "POST",
        f"{base}/feed",
        page,
        json={"message": "two photos", "attached_media": attached},
    )
    assert status == 200
    # A photo attaches once; a second post with it is refused.
    status, again, _ = await call(
        http, "POST", f"{base}/feed", page, json={"message": "again", "attached_media": attached}
    )
    assert (status, graph_code(again)[0]) == (400, 100)
    assert [p.text for p in sim.audit.posts(FB)] == ["one photo", "two photos"]
    _, listing, _ = await call(http, "GET", f"{base}/published_posts", page)
    assert [p["id"] for p in listing["data"]] == [feed["id"], single["post_id"]]


async def test_feed_validation(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page = sim.add_account(FB)
    url = f"{sim.urls.facebook}/{page.external_id}/feed"
    status, body, _ = await call(http, "POST", url, page, json={})
    assert (status, graph_code(body)) == (400, (100, None))
    status, body, _ = await call(
        http, "POST", url, page, data=b"not json", headers={"Content-Type": "application/json"}
    )
    assert (status, graph_code(body)[0]) == (400, 100)
    assert sim.audit.posts() == []


async def test_duplicate_post_refused_with_506(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page = sim.add_account(FB)
    url = f"{sim.urls.facebook}/{page.external_id}/feed"
    assert (await call(http, "POST", url, page, json={"message": "same"}))[0] == 200
    status, body, _ = await call(http, "POST", url, page, json={"message": "same"})
    assert (status, graph_code(body)[0]) == (400, 506)
    assert sim.audit.duplicates() == 0
    assert sim.audit.summary()["duplicates_refused"] == 1


async def test_duplicates_counted_when_platform_accepts_them(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(facebook=FacebookSim(reject_duplicates=False))) as sim:
        page, other = sim.add_account(FB), sim.add_account(FB)
        for account, text in ((page, "same"), (page, "same"), (page, "same"), (other, "same")):
            url = f"{sim.urls.facebook}/{account.external_id}/feed"
            assert (await call(http, "POST", url, account, json={"message": text}))[0] == 200
        assert sim.audit.duplicates() == 2  # the third post on `page` is the second extra


async def test_graph_auth_failures(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page, other = sim.add_account(FB), sim.add_account(FB)
    url = f"{sim.urls.facebook}/{page.external_id}/feed"
    msg = {"message": "x"}

    status, body, _ = await call(http, "POST", url, json=msg)
    assert (status, graph_code(body)) == (400, (104, None))
    status, body, _ = await call(
        http, "POST", url, json=msg, headers={"Authorization": "Bearer nonsense"}
    )
    assert (status, graph_code(body)) == (400, (190, None))
    status, body, _ = await call(http, "POST", url, other, json=msg)
    assert (status, graph_code(body)[0]) == (403, 200)
    status, body, _ = await call(http, "POST", f"{sim.urls.facebook}/999/feed", page, json=msg)
    assert (status, graph_code(body)) == (400, (100, 33))
    # An Instagram token means nothing to the Facebook Page.
    ig = sim.add_account(IG)
    status, body, _ = await call(http, "POST", url, ig, json=msg)
    assert graph_code(body)[0] == 190

    sim.revoke(FB, page.external_id)
    status, body, _ = await call(http, "POST", url, page, json=msg)
    assert (status, graph_code(body)) == (400, (190, 460))
    fresh = sim.reauthorize(FB, page.external_id)
    status, _, _ = await call(
        http, "POST", url, json=msg, headers={"Authorization": f"Bearer {fresh['access_token']}"}
    )
    assert status == 200
    # The old token stays dead after re-authorisation.
    status, body, _ = await call(http, "POST", url, page, json={"message": "y"})
    assert graph_code(body) == (190, 460)
    assert sim.audit.violations() == []


async def test_usage_headers_and_app_limit(http: aiohttp.ClientSession) -> None:
    # 200 x 1 daily user: 200 calls per rolling hour for the whole app; 4800 per 24 h for the
    # Page. A Page token's answers report the Page's BUC usage, never X-App-Usage.
    limits = FacebookSim(app_daily_active_users=1, page_engaged_users=1)
    async with Simulator(config(facebook=limits)) as sim:
        page = sim.add_account(FB)
        url = f"{sim.urls.facebook}/{page.external_id}/published_posts"
        for _ in range(47):
            _, _, headers = await call(http, "GET", url, page)
        assert "X-Business-Use-Case-Usage" not in headers  # 47 of 4800: still 0 %
        _, _, headers = await call(http, "GET", url, page)
        [usage] = json.loads(headers["X-Business-Use-Case-Usage"])[page.external_id]
        assert (usage["type"], usage["call_count"]) == ("pages", 1)
        assert "X-App-Usage" not in headers
        for _ in range(152):
            status, _, headers = await call(http, "GET", url, page)
            assert status == 200
            assert "X-App-Usage" not in headers
        assert sim.audit.violations() == []

        # Call 201 in the hour: the app's limit refuses it, and the answer names that limit.
        status, body, headers = await call(http, "GET", url, page)
        assert (status, graph_code(body)[0]) == (400, 4)
        assert body["error"]["is_transient"] is True
        assert json.loads(headers["X-App-Usage"])["call_count"] == 100
        [violation] = sim.audit.violations()
        assert (violation.platform, violation.rule) == (FB, "app_calls")

        # Rolling: one hour after the first calls, there is room again.
        sim.advance_clock(3600)
        status, _, _ = await call(http, "GET", url, page)
        assert status == 200


async def test_page_limit_refuses_call_4801(http: aiohttp.ClientSession) -> None:
    limits = FacebookSim(page_engaged_users=1, app_daily_active_users=100)  # app: 20,000 / h
    async with Simulator(config(facebook=limits)) as sim:
        page = sim.add_account(FB)
        url = f"{sim.urls.facebook}/{page.external_id}/published_posts"

        async def burst(n: int) -> list[int]:
            return [(await call(http, "GET", url, page))[0] for _ in range(n)]

        statuses = [
            s for chunk in await asyncio.gather(*(burst(300) for _ in range(16))) for s in chunk
        ]
        assert statuses == [200] * 4800
        assert sim.audit.violations() == []
        status, body, headers = await call(http, "GET", url, page)
        assert (status, graph_code(body)[0]) == (400, 32)
        usage = json.loads(headers["X-Business-Use-Case-Usage"])[page.external_id][0]
        assert usage["call_count"] == 100
        assert usage["estimated_time_to_regain_access"] == 24 * 60
        assert [v.rule for v in sim.audit.violations()] == ["page_calls"]
        # Another Page of the same app is not affected.
        other = sim.add_account(FB)
        other_url = f"{sim.urls.facebook}/{other.external_id}/published_posts"
        assert (await call(http, "GET", other_url, other))[0] == 200
        sim.advance_clock(86_400)
        assert (await call(http, "GET", url, page))[0] == 200


# -- Instagram --------------------------------------------------------------------------------


async def create_container(
    sim: Simulator, http: aiohttp.ClientSession, user: SimAccount, body: dict[str, Any]
) -> tuple[int, Any]:
    url = f"{sim.urls.instagram}/{user.external_id}/media"
    status, reply, _ = await call(http, "POST", url, user, json=body)
    return status, reply


async def container_status(
    sim: Simulator, http: aiohttp.ClientSession, user: SimAccount, container: str
) -> dict[str, Any]:
    url = f"{sim.urls.instagram}/{container}"
    status, body, _ = await call(http, "GET", url, user, params={"fields": "status_code,status"})
    assert status == 200
    return body  # type: ignore[no-any-return]


async def publish(
    sim: Simulator, http: aiohttp.ClientSession, user: SimAccount, container: str
) -> tuple[int, Any]:
    url = f"{sim.urls.instagram}/{user.external_id}/media_publish"
    status, body, _ = await call(http, "POST", url, user, json={"creation_id": container})
    return status, body


async def test_instagram_image_flow(sim: Simulator, http: aiohttp.ClientSession) -> None:
    user = sim.add_account(IG)
    assert user.external_id.isdigit()
    status, container = await create_container(
        sim, http, user, {"image_url": sim.media_url("image", "a.jpg"), "caption": "first"}
    )
    assert status == 200
    state = await container_status(sim, http, user, container["id"])
    assert state["id"] == container["id"]
    assert state["status_code"] == "FINISHED"
    assert state["status"]

    status, media = await publish(sim, http, user, container["id"])
    assert status == 200
    assert (await container_status(sim, http, user, container["id"]))["status_code"] == "PUBLISHED"

    base = f"{sim.urls.instagram}/{user.external_id}"
    _, listing, _ = await call(
        http, "GET", f"{base}/media", user, params={"fields": "id,caption,timestamp", "limit": "25"}
    )
    [item] = listing["data"]
    assert (item["id"], item["caption"]) == (media["id"], "first")
    assert GRAPH_TIME.match(item["timestamp"])
    _, quota, _ = await call(
        http,
        "GET",
        f"{base}/content_publishing_limit",
        user,
        params={"fields": "quota_usage,config"},
    )
    assert quota == {
        "data": [{"quota_usage": 1, "config": {"quota_total": 100, "quota_duration": 86400}}]
    }
    # The reference page's own example asks for rate_limit_settings and is answered config.
    _, quota, _ = await call(
        http,
        "GET",
        f"{base}/content_publishing_limit",
        user,
        params={"fields": "quota_usage,rate_limit_settings"},
    )
    assert quota["data"][0]["config"] == {"quota_total": 100, "quota_duration": 86400}
    # A container publishes once.
    status, _ = await publish(sim, http, user, container["id"])
    assert status == 400
    assert len(sim.audit.posts(IG)) == 1


async def test_instagram_text_only_and_bad_media(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    user = sim.add_account(IG)
    status, body = await create_container(sim, http, user, {"caption": "no media"})
    assert (status, graph_code(body)[0]) == (400, 100)
    status, body = await create_container(sim, http, user, {"image_url": "ftp://x/y.jpg"})
    assert (status, graph_code(body)) == (400, (9004, 2207052))
    # A file the simulator cannot "download" gives a container in ERROR.
    status, body = await create_container(
        sim, http, user, {"image_url": sim.media_url("image", "broken.jpg")}
    )
    assert status == 200
    assert (await container_status(sim, http, user, body["id"]))["status_code"] == "ERROR"
    status, _ = await publish(sim, http, user, body["id"])
    assert status == 400
    assert sim.audit.posts() == []


async def test_instagram_reel_state_machine(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(instagram=InstagramSim(video_processing_s=30))) as sim:
        user = sim.add_account(IG)
        video = sim.media_url("video", "clip1.mp4")
        _, reel = await create_container(
            sim, http, user, {"media_type": "REELS", "video_url": video, "caption": "reel"}
        )
        assert (await container_status(sim, http, user, reel["id"]))["status_code"] == (
            "IN_PROGRESS"
        )
        status, body = await publish(sim, http, user, reel["id"])
        assert (status, graph_code(body)) == (400, (9007, 2207027))
        sim.advance_clock(30)
        assert (await container_status(sim, http, user, reel["id"]))["status_code"] == "FINISHED"
        status, _ = await publish(sim, http, user, reel["id"])
        assert status == 200

        # Left unpublished for 24 h, a container expires.
        _, stale = await create_container(
            sim, http, user, {"media_type": "REELS", "video_url": video}
        )
        sim.advance_clock(86_400)
        assert (await container_status(sim, http, user, stale["id"]))["status_code"] == "EXPIRED"
        status, body = await publish(sim, http, user, stale["id"])
        assert (status, graph_code(body)) == (400, (-2, 2207020))
        assert len(sim.audit.posts(IG)) == 1
        assert sim.audit.violations() == []


async def test_instagram_carousel(sim: Simulator, http: aiohttp.ClientSession) -> None:
    user = sim.add_account(IG)
    children = []
    for body in (
        {"is_carousel_item": True, "image_url": sim.media_url("image", "c1.jpg")},
        {
            "is_carousel_item": True,
            "media_type": "VIDEO",
            "video_url": sim.media_url("video", "c2.mp4"),
        },
    ):
        status, item = await create_container(sim, http, user, body)
        assert status == 200
        children.append(item["id"])
    # An item cannot be published alone.
    assert (await publish(sim, http, user, children[0]))[0] == 400
    status, parent = await create_container(
        sim,
        http,
        user,
        {"media_type": "CAROUSEL", "children": ",".join(children), "caption": "album"},
    )
    assert status == 200
    sim.advance_clock(1)  # the video item needs its processing time
    assert (await publish(sim, http, user, parent["id"]))[0] == 200
    assert [p.text for p in sim.audit.posts(IG)] == ["album"]


async def test_instagram_publish_limit(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(instagram=InstagramSim(publishes_per_24h=3))) as sim:
        user = sim.add_account(IG)
        for n in range(4):
            _, container = await create_container(
                sim,
                http,
                user,
                {"image_url": sim.media_url("image", f"{n}.jpg"), "caption": f"post {n}"},
            )
            status, body = await publish(sim, http, user, container["id"])
            if n < 3:
                assert status == 200
                assert sim.audit.violations() == []
        assert (status, graph_code(body)) == (400, (9, 2207042))
        [violation] = sim.audit.violations()
        assert (violation.platform, violation.account, violation.rule) == (
            IG,
            user.external_id,
            "publishes",
        )
        # The window rolls: a day after the first publishes there is room again.
        sim.advance_clock(86_400)
        _, fresh = await create_container(
            sim, http, user, {"image_url": sim.media_url("image", "z.jpg"), "caption": "later"}
        )
        assert (await publish(sim, http, user, fresh["id"]))[0] == 200
        assert len(sim.audit.posts(IG)) == 4
        assert len(sim.audit.violations()) == 1


async def test_instagram_container_limit_counts_carousel_items(
    http: aiohttp.ClientSession,
) -> None:
    async with Simulator(config(instagram=InstagramSim(containers_per_24h=3))) as sim:
        user = sim.add_account(IG)
        ids = []
        for n in range(2):
            _, item = await create_container(
                sim,
                http,
                user,
                {"is_carousel_item": True, "image_url": sim.media_url("image", f"{n}.jpg")},
            )
            ids.append(item["id"])
        status, _ = await create_container(
            sim, http, user, {"media_type": "CAROUSEL", "children": ids, "caption": "3rd"}
        )
        assert status == 200
        assert sim.audit.violations() == []
        status, body = await create_container(
            sim, http, user, {"image_url": sim.media_url("image", "x.jpg")}
        )
        assert (status, graph_code(body)) == (400, (9, 2207042))
        assert [v.rule for v in sim.audit.violations()] == ["containers"]
