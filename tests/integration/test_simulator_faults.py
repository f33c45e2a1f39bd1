"""The simulator's fault injection, latency and audit (concurrency gauges, request log)."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from herald.config import LinkedInSettings, Settings
from herald.domain import Platform
from herald.simulator import (
    NO_LISTING_LAG,
    FaultConfig,
    LatencyModel,
    LinkedInSim,
    SimAccount,
    Simulator,
    SimulatorConfig,
)
from herald.testing import eventually
from tests.integration.sim_calls import linkedin_post

FB = Platform.FACEBOOK
IG = Platform.INSTAGRAM
LI = Platform.LINKEDIN
NO_LATENCY = LatencyModel(median_s=0, p99_s=0)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(
        SimulatorConfig(latency=NO_LATENCY, listing_lag=NO_LISTING_LAG)
    ) as simulator:
        yield simulator


def auth(account: SimAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.credentials['access_token']}"}


async def fb_post(
    sim: Simulator, http: aiohttp.ClientSession, page: SimAccount, text: str, **kwargs: Any
) -> tuple[int, Any, Any]:
    async with http.post(
        f"{sim.urls.facebook}/{page.external_id}/feed",
        json={"message": text},
        headers=auth(page),
        **kwargs,
    ) as response:
        return response.status, await response.json(), response.headers


async def li_post(
    sim: Simulator, http: aiohttp.ClientSession, member: SimAccount, text: str
) -> tuple[int, str, Any]:
    body = linkedin_post(member.external_id, text)
    headers = {
        **auth(member),
        "LinkedIn-Version": LinkedInSettings().api_version,
        "X-Restli-Protocol-Version": "2.0.0",
    }
    async with http.post(f"{sim.urls.linkedin}/rest/posts", json=body, headers=headers) as response:
        return response.status, await response.text(), response.headers


async def ig_publish(
    sim: Simulator, http: aiohttp.ClientSession, user: SimAccount, caption: str
) -> tuple[int, Any, Any]:
    base = f"{sim.urls.instagram}/{user.external_id}"
    async with http.post(
        f"{base}/media",
        json={"image_url": sim.media_url("image", "x.jpg"), "caption": caption},
        headers=auth(user),
    ) as response:
        assert response.status == 200  # no container faults are set here
        container = (await response.json())["id"]
    async with http.post(
        f"{base}/media_publish", json={"creation_id": container}, headers=auth(user)
    ) as response:
        return response.status, await response.json(), response.headers


# -- faults -----------------------------------------------------------------------------------


async def test_drop_commits_then_disconnects(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page = sim.add_account(FB)
    sim.set_faults(FB, FaultConfig(drop_rate=1.0))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fb_post(sim, http, page, "went live")
    [record] = sim.audit.posts()
    assert (record.text, record.delivered) == ("went live", False)
    assert sim.audit.summary()["undelivered"] == 1
    assert sim.audit.injected(FB) == {"drop": 1}
    # It is really there: a look-up finds it.
    sim.set_faults(FB, FaultConfig())
    async with http.get(
        f"{sim.urls.facebook}/{page.external_id}/published_posts", headers=auth(page)
    ) as response:
        listing = await response.json()
    assert [p["id"] for p in listing["data"]] == [record.post_id]
    feed_calls = [r for r in sim.audit.requests(FB) if r.path.endswith("/feed")]
    assert [r.status for r in feed_calls] == [0]


@pytest.mark.parametrize("share", [1.0, 0.0])
async def test_timeout_hangs_and_commits_only_before(
    sim: Simulator, http: aiohttp.ClientSession, share: float
) -> None:
    page = sim.add_account(FB)
    sim.set_faults(FB, FaultConfig(timeout_rate=1.0, hang_s=60, timeout_commit_share=share))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await fb_post(sim, http, page, "maybe", timeout=aiohttp.ClientTimeout(total=0.3))
    assert time.monotonic() - started < 5
    # The client gave up: the server lets the request go instead of holding it for 60 s.
    await eventually(lambda: sim.audit.in_flight(FB) == 0)
    posts = sim.audit.posts()
    if share == 1.0:
        assert [(p.text, p.delivered) for p in posts] == [("maybe", False)]
    else:
        assert posts == []
    assert sim.audit.injected(FB) == {"timeout": 1}


async def test_stop_releases_hung_requests(http: aiohttp.ClientSession) -> None:
    sim = Simulator(SimulatorConfig(latency=NO_LATENCY, listing_lag=NO_LISTING_LAG))
    await sim.start()
    page = sim.add_account(FB)
    sim.set_faults(FB, FaultConfig(timeout_rate=1.0, hang_s=600))
    pending = asyncio.create_task(fb_post(sim, http, page, "stuck"))
    await eventually(lambda: sim.audit.injected(FB).get("timeout") == 1)
    started = time.monotonic()
    await sim.stop()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await pending
    assert time.monotonic() - started < 5


async def test_transient_errors_commit_nothing(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page, user, member = sim.add_account(FB), sim.add_account(IG), sim.add_account(LI)
    for platform in (FB, IG, LI):
        sim.set_faults(platform, FaultConfig(error_rate=1.0))

    status, body, _ = await fb_post(sim, http, page, "a")
    assert status == 500
    assert (body["error"]["code"], body["error"]["is_transient"]) == (2, True)
    status, body, _ = await ig_publish(sim, http, user, "b")
    # Instagram's own server error, as its error-codes page documents it.
    assert (status, body["error"]["code"], body["error"]["error_subcode"]) == (400, -1, 2207001)
    status, text, _ = await li_post(sim, http, member, "c")
    assert (status, json.loads(text)["status"]) == (503, 503)

    assert sim.audit.posts() == []
    for platform in (FB, IG, LI):
        assert sim.audit.injected(platform) == {"error": 1}
    # Only post-creating calls draw faults: look-ups still work.
    async with http.get(
        f"{sim.urls.facebook}/{page.external_id}/published_posts", headers=auth(page)
    ) as response:
        assert response.status == 200


async def test_injected_throttles_are_not_violations(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page, user, member = sim.add_account(FB), sim.add_account(IG), sim.add_account(LI)
    sim.set_faults(FB, FaultConfig(throttle_rate=1.0, graph_throttle_codes=(32,), regain_minutes=5))
    status, body, headers = await fb_post(sim, http, page, "a")
    assert (status, body["error"]["code"]) == (400, 32)
    assert body["error"]["is_transient"] is True  # as Graph marks a throttle
    usage = json.loads(headers["X-Business-Use-Case-Usage"])[page.external_id][0]
    assert usage["estimated_time_to_regain_access"] == 5
    assert "Retry-After" not in headers

    sim.set_faults(FB, FaultConfig(throttle_rate=1.0, graph_throttle_codes=(4,)))
    status, body, headers = await fb_post(sim, http, page, "b")
    assert (status, body["error"]["code"]) == (400, 4)
    assert json.loads(headers["X-App-Usage"])["call_count"] == 100
    assert "X-Business-Use-Case-Usage" not in headers  # the app's limit, not the Page's

    sim.set_faults(IG, FaultConfig(throttle_rate=1.0, graph_throttle_codes=(613,)))
    status, body, headers = await ig_publish(sim, http, user, "c")
    assert (status, body["error"]["code"]) == (400, 613)
    assert json.loads(headers["X-Business-Use-Case-Usage"])[user.external_id][0]["type"] == (
        "instagram"
    )

    sim.set_faults(LI, FaultConfig(throttle_rate=1.0))
    status, text, headers = await li_post(sim, http, member, "d")
    assert status == 429
    assert "DAY" not in json.loads(text)["message"]
    assert "Retry-After" not in headers
    sim.set_faults(LI, FaultConfig(throttle_rate=1.0, retry_after_s=7))
    status, _, headers = await li_post(sim, http, member, "e")
    assert (status, headers["Retry-After"]) == (429, "7")

    assert sim.audit.violations() == []
    assert sim.audit.posts() == []
    assert sim.audit.summary()["injected"] == {
        "facebook": {"throttle": 2},
        "instagram": {"throttle": 1},
        "linkedin": {"throttle": 2},
        "youtube": {},
    }
    # Refused, every one of them, apart from the violations.
    assert [(r.platform, r.account, r.rule) for r in sim.audit.refusals(LI)] == [
        (LI, member.external_id, "injected")
    ] * 2
    summary = sim.audit.summary()
    assert (summary["refused"], summary["limit_violations"]) == (5, 0)
    assert summary["refused_by_rule"] == {
        "facebook:injected": 2,
        "instagram:injected": 1,
        "linkedin:injected": 2,
    }


async def test_a_request_over_a_limit_is_a_violation_and_a_refusal(
    http: aiohttp.ClientSession,
) -> None:
    config = SimulatorConfig(
        latency=NO_LATENCY, listing_lag=NO_LISTING_LAG, linkedin=LinkedInSim(member_posts_per_day=1)
    )
    async with Simulator(config) as sim:
        member = sim.add_account(LI)
        assert (await li_post(sim, http, member, "one"))[0] == 201
        assert (await li_post(sim, http, member, "two"))[0] == 429
        (violation,) = sim.audit.violations()
        assert sim.audit.refusals() == [violation]
        summary = sim.audit.summary()
        assert (summary["refused"], summary["limit_violations"]) == (1, 1)
        assert summary["refused_by_rule"] == {"linkedin:member_posts": 1}


async def test_a_platform_taken_down_refuses_connections_until_it_is_back(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    member, page = sim.add_account(LI), sim.add_account(FB)
    assert (await li_post(sim, http, member, "before"))[0] == 201
    await sim.take_down(LI)
    assert sim.is_down(LI)
    assert not sim.is_down(FB)
    async with aiohttp.ClientSession() as fresh:  # a new connection, not a kept-alive one
        with pytest.raises(aiohttp.ClientConnectorError):
            await li_post(sim, fresh, member, "while down")
    assert (await fb_post(sim, http, page, "other platforms stay up"))[0] == 200
    async with http.get(sim.media_url("image", "still.jpg")) as media:
        assert media.status == 200  # media live on a host of their own
    await sim.bring_up(LI)
    assert (await li_post(sim, http, member, "after"))[0] == 201  # same port, same accounts
    assert [p.text for p in sim.audit.posts(LI)] == ["before", "after"]
    assert sim.audit.summary()["down_s"]["linkedin"] > 0


async def test_a_platform_down_for_a_while_comes_back_by_itself(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    member = sim.add_account(LI)
    await sim.take_down(LI, for_s=0.3)
    with pytest.raises(aiohttp.ClientConnectorError):
        await li_post(sim, http, member, "while down")  # never connected before: refused
    await eventually(lambda: not sim.is_down(LI), within_s=5)
    assert (await li_post(sim, http, member, "after"))[0] == 201


async def test_taking_a_platform_down_cuts_the_requests_in_progress(
    http: aiohttp.ClientSession,
) -> None:
    config = SimulatorConfig(
        latency=NO_LATENCY, listing_lag=NO_LISTING_LAG, faults={LI: FaultConfig(timeout_rate=1.0)}
    )
    async with Simulator(config) as sim:
        member = sim.add_account(LI)
        hung = asyncio.create_task(li_post(sim, http, member, "hung"))
        await eventually(lambda: sim.audit.in_flight(LI) == 1, within_s=5)
        await sim.take_down(LI)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await asyncio.wait_for(hung, 5)
        await eventually(lambda: sim.audit.in_flight(LI) == 0, within_s=5)


async def test_fault_draws_follow_rate_and_seed(http: aiohttp.ClientSession) -> None:
    faults = {LI: FaultConfig(error_rate=0.3, throttle_rate=0.2)}

    async def run() -> list[int]:
        cfg = SimulatorConfig(
            latency=NO_LATENCY,
            listing_lag=NO_LISTING_LAG,
            faults=faults,
            seed=7,
            linkedin=LinkedInSim(member_posts_per_day=1000),  # every call counts, faulted too
        )
        async with Simulator(cfg) as sim:
            member = sim.add_account(LI)
            statuses = [(await li_post(sim, http, member, f"p{n}"))[0] for n in range(200)]
            injected = sim.audit.injected(LI)
            assert statuses.count(503) == injected["error"]
            assert statuses.count(429) == injected["throttle"]
            assert len(sim.audit.posts()) == statuses.count(201)
            return statuses

    first = await run()
    assert 40 <= first.count(503) <= 80
    assert 20 <= first.count(429) <= 60
    assert await run() == first  # same seed, same story


def test_fault_rates_must_fit_one_draw() -> None:
    with pytest.raises(ValueError, match="sum to at most 1"):
        FaultConfig(error_rate=0.6, drop_rate=0.6)


# -- audit ------------------------------------------------------------------------------------


async def test_max_concurrency_per_platform_and_account(http: aiohttp.ClientSession) -> None:
    steady = LatencyModel(median_s=0.2, p99_s=0.2)
    async with Simulator(SimulatorConfig(latency=steady)) as sim:
        first, second = sim.add_account(FB), sim.add_account(FB)

        async def look(page: SimAccount) -> int:
            async with http.get(
                f"{sim.urls.facebook}/{page.external_id}/published_posts", headers=auth(page)
            ) as response:
                return response.status

        pages = [first] * 6 + [second] * 4
        statuses = await asyncio.gather(*(look(page) for page in pages))
        assert statuses == [200] * 10
        assert sim.audit.max_concurrency(FB) == 10
        assert sim.audit.max_concurrency(FB, first.external_id) == 6
        assert sim.audit.max_concurrency(FB, second.external_id) == 4
        assert sim.audit.in_flight(FB) == 0
        summary = sim.audit.summary()
        assert summary["max_concurrency"]["facebook"] == 10
        assert summary["max_concurrency_per_account"]["facebook"] == 6
        assert summary["requests"]["facebook"] == 10


async def test_request_log(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page = sim.add_account(FB)
    before = time.monotonic()
    await fb_post(sim, http, page, "one")
    async with http.get(f"{sim.urls.facebook}/{page.external_id}/feed") as response:
        assert response.status == 400  # no token: logged without an account
    after = time.monotonic()
    posted, refused = sim.audit.requests(FB)
    assert (posted.method, posted.path, posted.status, posted.account) == (
        "POST",
        f"/v23.0/{page.external_id}/feed",
        200,
        page.external_id,
    )
    assert (refused.status, refused.account) == (400, None)
    assert before <= posted.at <= refused.at <= after
    assert sim.audit.requests(FB, page.external_id) == [posted]


async def test_latency_is_applied(http: aiohttp.ClientSession) -> None:
    steady = LatencyModel(median_s=0.1, p99_s=0.1)
    async with Simulator(
        SimulatorConfig(
            latency=NO_LATENCY, listing_lag=NO_LISTING_LAG, latency_by_platform={FB: steady}
        )
    ) as sim:
        page = sim.add_account(FB)
        started = time.monotonic()
        await fb_post(sim, http, page, "slow")
        assert time.monotonic() - started >= 0.1


def test_latency_model_quantiles() -> None:
    model = LatencyModel(median_s=0.08, p99_s=1.0)
    assert model.sigma == pytest.approx(math.log(1.0 / 0.08) / 2.326)
    rng = random.Random(3)
    samples = sorted(model.sample(rng) for _ in range(20_000))
    assert samples[10_000] == pytest.approx(0.08, rel=0.05)
    assert samples[19_800] == pytest.approx(1.0, rel=0.15)
    assert LatencyModel(median_s=0, p99_s=0).sample(rng) == 0.0
    with pytest.raises(ValueError, match="p99"):
        LatencyModel(median_s=0.5, p99_s=0.1)


async def test_audit_reset(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page = sim.add_account(FB)
    await fb_post(sim, http, page, "x")
    sim.audit.reset()
    assert sim.audit.summary()["posts"] == 0
    assert sim.audit.requests() == []


# -- configuration ----------------------------------------------------------------------------


def test_config_round_trips_through_json() -> None:
    config = SimulatorConfig(
        latency=LatencyModel(median_s=0.005, p99_s=0.05),
        latency_by_platform={Platform.YOUTUBE: LatencyModel(median_s=0.1, p99_s=1.0)},
        faults={FB: FaultConfig(drop_rate=0.01, graph_throttle_codes=(4, 32))},
        seed=11,
    )
    assert SimulatorConfig.model_validate_json(config.model_dump_json()) == config


def test_config_from_settings_mirrors_herald_limits() -> None:
    settings = Settings(
        facebook={"page_engaged_users": 3, "app_daily_active_users": 7},
        instagram={"publishes_per_24h": 50, "containers_per_24h": 200},
        linkedin={"member_posts_per_day": 20, "app_posts_per_day": 500},
        youtube={
            "quota_model": "units",
            "units_per_day": 5000,
            "insert_cost_units": 1000,
            "uploads_per_channel_per_day": 4,
        },
    )
    config = SimulatorConfig.from_settings(
        settings,
        latency=LatencyModel(median_s=0.005, p99_s=0.05),
        faults={FB: FaultConfig(drop_rate=0.01)},
        seed=1,
        instagram={"video_processing_s": 0.0},
    )
    assert config.facebook.page_calls_per_24h == 4800 * 3
    assert config.facebook.app_calls_per_1h == 200 * 7
    assert (config.instagram.publishes_per_24h, config.instagram.containers_per_24h) == (50, 200)
    assert config.instagram.video_processing_s == 0.0
    assert (config.linkedin.member_posts_per_day, config.linkedin.app_posts_per_day) == (20, 500)
    assert config.youtube.quota_model == "units"
    assert (config.youtube.units_per_day, config.youtube.insert_cost_units) == (5000, 1000)
    assert config.youtube.uploads_per_channel_per_day == 4
    assert config.faults_for(FB).drop_rate == 0.01
    assert config.seed == 1


async def test_settings_overrides_point_at_the_simulator(sim: Simulator) -> None:
    overrides = sim.settings_overrides()
    settings = Settings.model_validate(overrides)
    assert settings.facebook.base_url == sim.urls.facebook
    assert settings.facebook.base_url.endswith("/v23.0")
    assert settings.youtube.token_url == f"{sim.urls.youtube}/token"
    assert settings.linkedin.base_url == sim.urls.linkedin
