"""The platforms' insights endpoints, through the simulator's HTTP servers: a Facebook Page
post's insights and its reactions/comments/shares fields, an Instagram media's insights and
counts, LinkedIn's socialActions and member post statistics, YouTube's video statistics.
Counts are what the engagement ground truth shows at the post's age on the simulator clock:
they never go down as the clock moves on, the same age answers the same, and each call is
metered and faulted as a read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
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
    SimAccount,
    Simulator,
    SimulatorClient,
    SimulatorClientError,
    YouTubeSim,
)
from herald.simulator.clock import SimClock
from tests.integration.sim_calls import call, exact_config, linkedin_post
from tests.integration.test_simulator_reads import ig_publish, upload

FB, IG, LI, YT = Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN, Platform.YOUTUBE
HOUR, DAY = 3600.0, 86_400.0
AGES = (0.0, HOUR, DAY - HOUR, 6 * DAY)  # steps to 0 h, 1 h, 24 h and 7 d of age
START = datetime(2026, 12, 2, 18, 0, tzinfo=UTC).timestamp()  # a Wednesday evening
READ_ERRORS = FaultConfig(calls={CallKind.READ: CallFaults(error_rate=1.0)})
LI_HEADERS = {
    "LinkedIn-Version": LinkedInSettings().api_version,
    "X-Restli-Protocol-Version": "2.0.0",
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # Tokens that outlive a week of simulated time; Instagram calls that show their usage.
    config = exact_config(
        seed=5,
        instagram=InstagramSim(calls_per_24h=100),
        youtube=YouTubeSim(access_token_ttl_s=30 * DAY),
    )
    # A fixed start: an audience's activity, hence what a post draws, depends on the hour of
    # the week it is published at, and the wall clock's hour would make each run differ.
    async with Simulator(config, clock=SimClock(start=START)) as simulator:
        yield simulator


async def fb_post(sim: Simulator, http: aiohttp.ClientSession, page: SimAccount) -> str:
    url = f"{sim.urls.facebook}/{page.external_id}/photos"
    image = {"url": sim.media_url("image", "p.jpg"), "caption": "look at this"}
    _, body, _ = await call(http, "POST", url, page, json=image)
    return str(body["post_id"])


def values(body: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item["values"][0]["value"] for item in body["data"]}


# -- Facebook -----------------------------------------------------------------------------------


async def test_page_post_insights_grow_with_age(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page = sim.add_account(FB)
    post = await fb_post(sim, http, page)
    url = f"{sim.urls.facebook}/{post}/insights"
    metrics = "post_impressions,post_total_media_view_unique,post_reactions_by_type_total"
    seen = []
    for step in AGES:
        sim.advance_clock(step)
        status, body, _ = await call(http, "GET", url, page, params={"metric": metrics})
        assert status == 200
        item = body["data"][0]
        assert (item["period"], item["id"]) == (
            "lifetime",
            f"{post}/insights/post_impressions/lifetime",
        )
        seen.append(values(body))
        _, again, _ = await call(http, "GET", url, page, params={"metric": metrics})
        assert values(again) == seen[-1]  # the same age, the same answer
    assert seen[0] == {
        "post_impressions": 0,
        "post_total_media_view_unique": 0,
        "post_reactions_by_type_total": {},
    }
    impressions = [v["post_impressions"] for v in seen]
    assert impressions == sorted(impressions)
    assert impressions[-1] > 0
    reactions = [sum(v["post_reactions_by_type_total"].values()) for v in seen]
    assert reactions == sorted(reactions)
    observed = sim.observed_engagement(FB, post)
    assert seen[-1]["post_impressions"] == observed.impressions
    assert reactions[-1] == observed.reactions
    # One metric in the path answers the same as in the query.
    _, one, _ = await call(http, "GET", f"{url}/post_impressions", page)
    assert values(one) == {"post_impressions": observed.impressions}


async def test_page_post_reactions_comments_and_shares_fields(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page = sim.add_account(FB)
    post = await fb_post(sim, http, page)
    sim.advance_clock(7 * DAY)
    fields = "id,reactions.summary(total_count).limit(0),comments.summary(true),shares"
    status, body, _ = await call(
        http, "GET", f"{sim.urls.facebook}/{post}", page, params={"fields": fields}
    )
    assert status == 200
    observed = sim.observed_engagement(FB, post)
    assert body["reactions"] == {
        "data": [],
        "summary": {"total_count": observed.reactions, "viewer_reaction": "NONE"},
    }
    assert body["comments"]["summary"]["total_count"] == observed.count("comment")
    assert body["shares"] == {"count": observed.count("share")}
    assert observed.reactions > 0
    assert observed.count("share") > 0


async def test_page_post_insights_refusals(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page, other = sim.add_account(FB), sim.add_account(FB)
    post = await fb_post(sim, http, page)
    url = f"{sim.urls.facebook}/{post}/insights"
    status, body, _ = await call(http, "GET", url, page, params={"metric": "post_clickz"})
    assert (status, body["error"]["code"]) == (400, 100)
    assert "metric[0]" in body["error"]["message"]
    status, body, _ = await call(
        http,
        "GET",
        url,
        page,
        params={"metric": "post_impressions_unique"},  # retired
    )
    assert (status, body["error"]["code"]) == (400, 100)
    status, body, _ = await call(http, "GET", url, page)
    assert (status, body["error"]["code"]) == (400, 100)
    status, body, _ = await call(http, "GET", url, other, params={"metric": "post_impressions"})
    assert (status, body["error"]["code"], body["error"]["error_subcode"]) == (400, 100, 33)
    unknown = f"{sim.urls.facebook}/{page.external_id}_1/insights"
    status, body, _ = await call(http, "GET", unknown, page, params={"metric": "post_impressions"})
    assert (status, body["error"]["error_subcode"]) == (400, 33)
    bad_token = {"Authorization": "Bearer EAAGnope"}
    status, body, _ = await call(
        http, "GET", url, params={"metric": "post_impressions"}, headers=bad_token
    )
    assert (status, body["error"]["code"]) == (400, 190)
    sim.set_faults(FB, READ_ERRORS)
    status, body, _ = await call(http, "GET", url, page, params={"metric": "post_impressions"})
    assert (status, body["error"]["code"]) == (500, 2)


async def test_page_post_insights_count_against_the_limits(http: aiohttp.ClientSession) -> None:
    async with Simulator(exact_config(facebook=FacebookSim(app_daily_active_users=1))) as sim:
        page = sim.add_account(FB)
        post = await fb_post(sim, http, page)
        url = f"{sim.urls.facebook}/{post}/insights/post_impressions"
        for _ in range(199):  # 200 calls an hour, the post included
            status, _, _ = await call(http, "GET", url, page)
            assert status == 200
        status, body, _ = await call(http, "GET", url, page)
        assert (status, body["error"]["code"]) == (400, 4)


# -- Instagram ----------------------------------------------------------------------------------


async def test_instagram_media_insights(sim: Simulator, http: aiohttp.ClientSession) -> None:
    user, other = sim.add_account(IG), sim.add_account(IG)
    media = await ig_publish(sim, http, user)
    url = f"{sim.urls.instagram}/{media}/insights"
    metrics = "views,reach,likes,comments,shares,saved,total_interactions"
    seen = []
    for step in AGES:
        sim.advance_clock(step)
        status, body, headers = await call(http, "GET", url, user, params={"metric": metrics})
        assert status == 200
        seen.append(values(body))
    assert "X-Business-Use-Case-Usage" in headers  # metered as every Instagram call
    for name in metrics.split(","):
        series = [v[name] for v in seen]
        assert series == sorted(series), name
    final = seen[-1]
    total = final["likes"] + final["comments"] + final["shares"] + final["saved"]
    assert final["total_interactions"] == total > 0
    fields = {"fields": "id,like_count,comments_count"}
    _, body, _ = await call(http, "GET", f"{sim.urls.instagram}/{media}", user, params=fields)
    assert (body["like_count"], body["comments_count"]) == (final["likes"], final["comments"])
    status, body, _ = await call(http, "GET", url, user, params={"metric": "impressions"})
    assert (status, body["error"]["code"]) == (400, 100)  # retired in 2025
    status, body, _ = await call(http, "GET", url, other, params={"metric": "reach"})
    assert (status, body["error"]["error_subcode"]) == (400, 33)


# -- LinkedIn -----------------------------------------------------------------------------------


async def li_post(sim: Simulator, http: aiohttp.ClientSession, member: SimAccount) -> str:
    status, _, headers = await call(
        http,
        "POST",
        f"{sim.urls.linkedin}/rest/posts",
        member,
        json=linkedin_post(member.external_id, "a thought"),
        headers=LI_HEADERS,
    )
    assert status == 201
    return str(headers["x-restli-id"])


async def test_linkedin_social_actions_and_statistics(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    member, other = sim.add_account(LI), sim.add_account(LI)
    urn = await li_post(sim, http, member)
    actions = f"{sim.urls.linkedin}/rest/socialActions/{quote(urn, safe='')}"
    stats = f"{sim.urls.linkedin}/rest/memberCreatorPostAnalytics"
    likes, impressions = [], []
    for step in AGES:
        sim.advance_clock(step)
        status, body, _ = await call(http, "GET", actions, member, headers=LI_HEADERS)
        assert status == 200
        assert body["target"] == urn
        likes.append(body["likesSummary"]["totalLikes"])
        params = {
            "q": "entity",
            "entity": f"(share:{urn})",
            "queryType": "IMPRESSION",
            "aggregation": "TOTAL",
        }
        status, body, _ = await call(http, "GET", stats, member, params=params, headers=LI_HEADERS)
        assert status == 200
        [element] = body["elements"]
        assert element["targetEntity"] == {"share": urn}
        impressions.append(element["count"])
    assert likes == sorted(likes)
    assert impressions == sorted(impressions)
    observed = sim.observed_engagement(LI, urn)
    assert (likes[-1], impressions[-1]) == (observed.count("like"), observed.impressions)
    status, _, _ = await call(http, "GET", actions, other, headers=LI_HEADERS)
    assert status == 403
    missing = f"{sim.urls.linkedin}/rest/socialActions/{quote('urn:li:share:1', safe='')}"
    status, _, _ = await call(http, "GET", missing, member, headers=LI_HEADERS)
    assert status == 404
    status, body, _ = await call(
        http,
        "GET",
        stats,
        member,
        params={"q": "entity", "entity": urn, "queryType": "VIEWS"},
        headers=LI_HEADERS,
    )
    assert (status, body["code"]) == (400, "ILLEGAL_ARGUMENT")
    status, body, _ = await call(
        http, "GET", actions, headers={**LI_HEADERS, "Authorization": "Bearer AQVnope"}
    )
    assert (status, body["code"]) == (401, "INVALID_ACCESS_TOKEN")


# -- YouTube ------------------------------------------------------------------------------------


async def test_youtube_video_statistics(sim: Simulator, http: aiohttp.ClientSession) -> None:
    channel = sim.add_account(YT)
    video = await upload(sim, http, channel)
    url = f"{sim.urls.youtube}/youtube/v3/videos"
    params = {"id": video, "part": "id,statistics"}
    views = []
    for step in AGES:
        sim.advance_clock(step)
        status, body, _ = await call(http, "GET", url, channel, params=params)
        assert status == 200
        [item] = body["items"]
        stats = item["statistics"]
        assert set(stats) == {"viewCount", "likeCount", "favoriteCount", "commentCount"}
        assert all(isinstance(value, str) for value in stats.values())
        views.append(int(stats["viewCount"]))
    assert views == sorted(views)
    assert views[-1] > 0
    observed = sim.observed_engagement(YT, video)
    assert stats["likeCount"] == str(observed.count("like"))


# -- the truth stays in-process -------------------------------------------------------------------


async def test_expected_engagement_and_truth_for_evaluation(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page = sim.add_account(FB)
    post = await fb_post(sim, http, page)
    truth = sim.post_truth(FB, post)
    assert truth is not None
    assert truth.account == page.external_id
    full = sim.expected_engagement(FB, post)
    assert 0 < sim.expected_engagement(FB, post, age_s=HOUR) < full
    hours = sim.engagement_truth(page)
    assert len(hours) == 168
    assert min(hours) > 0
    with pytest.raises(KeyError):
        sim.expected_engagement(FB, "nope")


async def test_the_admin_port_hands_the_truth_to_evaluation_tooling(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page, member = sim.add_account(FB), sim.add_account(LI)
    post, urn = await fb_post(sim, http, page), await li_post(sim, http, member)
    client = SimulatorClient(sim.urls.admin, session=http)
    hours = await client.engagement_truth(FB, page.external_id, week_of=1_780_000_000)
    assert hours == pytest.approx(sim.engagement_truth(page, week_of=1_780_000_000))
    video = await client.engagement_truth(FB, page.external_id, content="video", length=80)
    assert video == pytest.approx(sim.engagement_truth(page, content="video", length=80))
    for platform, post_id in ((FB, post), (LI, urn)):
        expected = await client.expected_engagement(platform, post_id, age_s=HOUR)
        assert expected == pytest.approx(sim.expected_engagement(platform, post_id, age_s=HOUR))
    with pytest.raises(SimulatorClientError) as missing:
        await client.expected_engagement(FB, "nope")
    assert missing.value.status == 404
    with pytest.raises(SimulatorClientError) as unknown:
        await client.engagement_truth(FB, "1000")
    assert unknown.value.status == 404
