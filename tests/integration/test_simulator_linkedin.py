"""The simulator's LinkedIn Posts API, driven with plain HTTP requests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from herald.config import LinkedInSettings
from herald.domain import Platform
from herald.simulator import (
    NO_LISTING_LAG,
    LatencyModel,
    LinkedInSim,
    SimAccount,
    SimClock,
    Simulator,
    SimulatorConfig,
    media_bytes,
    media_sha256,
)
from tests.integration.sim_calls import linkedin_post

LI = Platform.LINKEDIN
#: The version Herald speaks by default: live on the simulator's clock, as it must be.
SPOKEN = LinkedInSettings().api_version
NO_LATENCY = LatencyModel(median_s=0, p99_s=0)
MEMBER_DAY = "Resource level throttle MEMBER DAY limit for calls to this resource is reached."
APP_DAY = "Resource level throttle APPLICATION DAY limit for calls to this resource is reached."


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


def headers(account: SimAccount, version: str = SPOKEN) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {account.credentials['access_token']}",
        "LinkedIn-Version": version,
        "X-Restli-Protocol-Version": "2.0.0",
    }


async def create_post(
    sim: Simulator,
    http: aiohttp.ClientSession,
    account: SimAccount,
    body: dict[str, Any],
    hdrs: dict[str, str] | None = None,
) -> tuple[int, str, Any]:
    async with http.post(
        f"{sim.urls.linkedin}/rest/posts", json=body, headers=hdrs or headers(account)
    ) as response:
        text = await response.text()
        return response.status, text, response.headers


async def test_post_and_lookup(sim: Simulator, http: aiohttp.ClientSession) -> None:
    member = sim.add_account(LI)
    assert member.external_id.startswith("urn:li:person:")
    status, text, hdrs = await create_post(
        sim, http, member, linkedin_post(member.external_id, r"Hello \#world")
    )
    assert (status, text) == (201, "")
    share = hdrs["x-restli-id"]
    assert share.startswith("urn:li:share:")

    async with http.get(
        f"{sim.urls.linkedin}/rest/posts",
        params={
            "q": "author",
            "author": member.external_id,
            "count": "20",
            "sortBy": "LAST_MODIFIED",
        },
        headers=headers(member),
    ) as response:
        assert response.status == 200
        listing = await response.json()
    [element] = listing["elements"]
    assert element["id"] == share
    assert element["author"] == member.external_id
    assert element["commentary"] == r"Hello \#world"
    assert element["lifecycleState"] == "PUBLISHED"
    assert abs(element["createdAt"] / 1000 - sim.clock.now()) < 60
    assert listing["paging"]["count"] == 20
    [record] = sim.audit.posts(LI)
    assert (record.post_id, record.text) == (share, r"Hello \#world")


async def test_image_upload_then_post(sim: Simulator, http: aiohttp.ClientSession) -> None:
    member = sim.add_account(LI)
    async with http.post(
        f"{sim.urls.linkedin}/rest/images",
        params={"action": "initializeUpload"},
        json={"initializeUploadRequest": {"owner": member.external_id}},
        headers=headers(member),
    ) as response:
        assert response.status == 200
        value = (await response.json())["value"]
    assert value["image"].startswith("urn:li:image:")
    assert value["uploadUrl"].startswith(sim.urls.linkedin)
    assert value["uploadUrlExpiresAt"] > sim.clock.now() * 1000

    body = linkedin_post(
        member.external_id,
        "with image",
        content={"media": {"id": value["image"], "altText": "a cat"}},
    )
    # Not uploaded yet: refused.
    status, _, _ = await create_post(sim, http, member, body)
    assert status == 422

    async with http.get(sim.media_url("image", "cat.jpg", size=5000)) as response:
        image = await response.read()
    assert image == media_bytes("image/cat.jpg", 5000)
    async with http.put(
        value["uploadUrl"],
        data=image,
        headers={"Authorization": f"Bearer {member.credentials['access_token']}"},
    ) as response:
        assert response.status == 201
    status, _, _ = await create_post(sim, http, member, body)
    assert status == 201
    [record] = sim.audit.posts(LI)
    assert (record.media_bytes, record.media_sha256) == (5000, media_sha256("image/cat.jpg", 5000))


async def test_auth_failures(sim: Simulator, http: aiohttp.ClientSession) -> None:
    member = sim.add_account(LI)
    body = linkedin_post(member.external_id, "x")

    async def service_code(hdrs: dict[str, str]) -> tuple[int, Any]:
        async with http.post(
            f"{sim.urls.linkedin}/rest/posts", json=body, headers=hdrs
        ) as response:
            text = await response.text()
            return response.status, json.loads(text).get("serviceErrorCode") if text else None

    good = headers(member)
    missing = {k: v for k, v in good.items() if k != "Authorization"}
    assert await service_code(missing) == (401, 65604)
    assert await service_code({**good, "Authorization": "Bearer nope"}) == (401, 65600)
    sim.revoke(LI, member.external_id)
    assert await service_code(good) == (401, 65601)
    fresh = sim.reauthorize(LI, member.external_id)
    assert (await service_code({**good, "Authorization": f"Bearer {fresh['access_token']}"}))[
        0
    ] == 201
    assert await service_code(good) == (401, 65601)


async def test_version_and_protocol_headers(sim: Simulator, http: aiohttp.ClientSession) -> None:
    member = sim.add_account(LI)
    body = linkedin_post(member.external_id, "x")
    good = headers(member)
    cases = [
        ({k: v for k, v in good.items() if k != "LinkedIn-Version"}, 400),
        ({**good, "LinkedIn-Version": "2025-10"}, 400),
        ({**good, "LinkedIn-Version": "202301"}, 426),  # sunset
        ({**good, "LinkedIn-Version": "209912"}, 426),  # not released yet
        ({k: v for k, v in good.items() if k != "X-Restli-Protocol-Version"}, 400),
    ]
    for hdrs, expected in cases:
        status, _, _ = await create_post(sim, http, member, body, hdrs)
        assert status == expected, hdrs
    assert sim.audit.posts() == []


async def test_body_validation(sim: Simulator, http: aiohttp.ClientSession) -> None:
    member, other = sim.add_account(LI), sim.add_account(LI)
    cases = [
        (linkedin_post(other.external_id, "not mine"), 403),
        (linkedin_post(member.external_id, "x" * 3001), 422),
        (linkedin_post(member.external_id, "bad", visibility="EVERYONE"), 422),
        (linkedin_post(member.external_id, "bad", unknownField=1), 422),
        (linkedin_post(member.external_id, "bad", lifecycleState="DRAFT"), 422),
        (
            {k: v for k, v in linkedin_post(member.external_id, "x").items() if k != "commentary"},
            422,
        ),
        (
            linkedin_post(member.external_id, "bad", content={"article": {"title": "no source"}}),
            422,
        ),
    ]
    for body, expected in cases:
        status, _, _ = await create_post(sim, http, member, body)
        assert status == expected, body
    status, _, _ = await create_post(
        sim, http, member, linkedin_post(member.external_id, "x" * 3000)
    )
    assert status == 201
    link = {"article": {"source": "https://example.com/a", "title": "A"}}
    status, _, _ = await create_post(
        sim, http, member, linkedin_post(member.external_id, "link", content=link)
    )
    assert status == 201


async def test_member_day_limit_and_utc_reset(http: aiohttp.ClientSession) -> None:
    start = datetime(2026, 11, 28, 23, 59, 0, tzinfo=UTC).timestamp()
    cfg = SimulatorConfig(
        latency=NO_LATENCY, listing_lag=NO_LISTING_LAG, linkedin=LinkedInSim(member_posts_per_day=3)
    )
    async with Simulator(cfg, clock=SimClock(start)) as sim:
        member = sim.add_account(LI)
        for n in range(3):
            status, _, _ = await create_post(
                sim, http, member, linkedin_post(member.external_id, f"post {n}")
            )
            assert status == 201
        assert sim.audit.violations() == []
        status, text, hdrs = await create_post(
            sim, http, member, linkedin_post(member.external_id, "one too many")
        )
        assert status == 429
        assert json.loads(text) == {"message": MEMBER_DAY, "status": 429}
        assert "Retry-After" not in hdrs
        [violation] = sim.audit.violations()
        assert (violation.account, violation.rule) == (member.external_id, "member_posts")
        sim.advance_clock(61)  # 00:00:01 UTC: a new day
        status, _, _ = await create_post(
            sim, http, member, linkedin_post(member.external_id, "new")
        )
        assert status == 201


async def test_app_day_limit(http: aiohttp.ClientSession) -> None:
    limits = LinkedInSim(member_posts_per_day=10, app_posts_per_day=3)
    async with Simulator(
        SimulatorConfig(latency=NO_LATENCY, listing_lag=NO_LISTING_LAG, linkedin=limits)
    ) as sim:
        members = [sim.add_account(LI) for _ in range(2)]
        for n in range(3):
            member = members[n % 2]
            status, _, _ = await create_post(
                sim, http, member, linkedin_post(member.external_id, f"p{n}")
            )
            assert status == 201
        member = members[1]
        status, text, _ = await create_post(
            sim, http, member, linkedin_post(member.external_id, "x")
        )
        assert (status, json.loads(text)) == (429, {"message": APP_DAY, "status": 429})
        assert [v.rule for v in sim.audit.violations()] == ["app_posts"]


async def test_duplicate_commentary_is_refused_for_24_hours(http: aiohttp.ClientSession) -> None:
    async with Simulator(SimulatorConfig(latency=NO_LATENCY, listing_lag=NO_LISTING_LAG)) as sim:
        member, other = sim.add_account(LI), sim.add_account(LI)
        status, _, hdrs = await create_post(
            sim, http, member, linkedin_post(member.external_id, "same")
        )
        assert status == 201
        first = hdrs["x-restli-id"]
        status, text, _ = await create_post(
            sim, http, member, linkedin_post(member.external_id, "same")
        )
        body = json.loads(text)
        assert (status, body["status"]) == (422, 422)
        assert body["message"].endswith(f"Content is a duplicate of {first}")
        assert body["errorDetails"]["inputErrors"][0]["code"] == "DUPLICATE_POST"
        # Another author, other text, or no text at all is not a duplicate.
        for account, text in ((other, "same"), (member, "different"), (member, "")):
            status, _, _ = await create_post(
                sim, http, account, linkedin_post(account.external_id, text)
            )
            assert status == 201
        status, _, _ = await create_post(sim, http, member, linkedin_post(member.external_id, ""))
        assert status == 201
        sim.advance_clock(86_400)
        status, _, _ = await create_post(
            sim, http, member, linkedin_post(member.external_id, "same")
        )
        assert status == 201
        assert sim.audit.summary()["duplicates_refused"] == 1
        assert sim.audit.duplicates() == 2  # the empty commentary twice, "same" a day later


async def test_duplicate_commentary_is_counted(http: aiohttp.ClientSession) -> None:
    config = SimulatorConfig(
        latency=NO_LATENCY,
        listing_lag=NO_LISTING_LAG,
        linkedin=LinkedInSim(reject_duplicates=False),
    )
    async with Simulator(config) as sim:
        member = sim.add_account(LI)
        for _ in range(3):
            status, _, _ = await create_post(
                sim, http, member, linkedin_post(member.external_id, "same")
            )
            assert status == 201
        assert sim.audit.duplicates() == 2
        assert sim.audit.summary()["duplicates"] == 2
        assert sim.audit.summary()["duplicates_refused"] == 0
