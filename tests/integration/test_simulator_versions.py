"""The simulated platforms' API versions retire by the simulator's clock, as the platforms
document: Graph serves a retired version's calls with the oldest live one and names it in
``facebook-api-version``; LinkedIn answers a sunset version 426."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import aiohttp
import pytest

from herald.config import FacebookSettings, InstagramSettings, LinkedInSettings
from herald.domain import Platform
from herald.simulator import (
    NO_LISTING_LAG,
    LatencyModel,
    SimAccount,
    SimClock,
    Simulator,
    SimulatorConfig,
)
from herald.simulator.versions import graph_serving, linkedin_active

FB, LI = Platform.FACEBOOK, Platform.LINKEDIN
DAY_S = 86_400.0
CONFIG = SimulatorConfig(latency=LatencyModel(median_s=0, p99_s=0), listing_lag=NO_LISTING_LAG)
#: v20.0's end of life (developers.facebook.com/docs/graph-api/changelog/versions).
V20_ENDS = date(2026, 9, 24)


def at(day: date) -> float:
    """Noon UTC of ``day``, as a Unix time."""
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def feed(
    sim: Simulator, http: aiohttp.ClientSession, page: SimAccount, version: str, **extra: Any
) -> tuple[int, Any, str | None]:
    origin = sim.urls.facebook.rsplit("/", 1)[0]
    headers = {"Authorization": f"Bearer {page.credentials['access_token']}", **extra}
    url = f"{origin}/{version}/{page.external_id}/feed"
    async with http.post(url, json={"message": f"via {version}"}, headers=headers) as response:
        return response.status, await response.json(), response.headers.get("facebook-api-version")


async def test_a_retired_graph_version_is_served_by_the_oldest_live_one(
    http: aiohttp.ClientSession,
) -> None:
    async with Simulator(CONFIG, clock=SimClock(at(date(2026, 9, 23)))) as sim:
        page = sim.add_account(FB)
        status, _, served = await feed(sim, http, page, "v20.0")
        assert (status, served) == (200, "v20.0")  # its last day

        sim.advance_clock(DAY_S)  # v20.0's end of life
        status, body, served = await feed(sim, http, page, "v20.0")
        assert (status, served) == (200, "v21.0"), body
        assert len(sim.audit.posts()) == 2  # served, not refused

        status, _, served = await feed(sim, http, page, "v23.0")
        assert (status, served) == (200, "v23.0")  # a live version answers for itself


async def test_every_graph_answer_names_its_version(http: aiohttp.ClientSession) -> None:
    async with Simulator(CONFIG, clock=SimClock(at(date(2026, 12, 7)))) as sim:
        page = sim.add_account(FB)
        status, body, served = await feed(sim, http, page, "v19.0", Authorization="Bearer x")
        assert (status, body["error"]["code"], served) == (400, 190, "v21.0")
        origin = sim.urls.instagram.rsplit("/", 1)[0]
        async with http.get(f"{origin}/v23.0/nowhere/at/all") as response:
            assert response.headers["facebook-api-version"] == "v23.0"


async def test_a_graph_version_not_released_is_not_served(http: aiohttp.ClientSession) -> None:
    async with Simulator(CONFIG, clock=SimClock(at(date(2026, 7, 28)))) as sim:
        page = sim.add_account(FB)
        status, body, served = await feed(sim, http, page, "v26.0")
        assert (status, body["error"]["code"], served) == (400, 100, None)
        sim.advance_clock(DAY_S)  # released
        status, _, served = await feed(sim, http, page, "v26.0")
        assert (status, served) == (200, "v26.0")
        assert len(sim.audit.posts()) == 1


async def li_post(
    sim: Simulator, http: aiohttp.ClientSession, member: SimAccount, version: str
) -> tuple[int, Any]:
    headers = {
        "Authorization": f"Bearer {member.credentials['access_token']}",
        "LinkedIn-Version": version,
        "X-Restli-Protocol-Version": "2.0.0",
    }
    body = {
        "author": member.external_id,
        "commentary": f"on {version} at {sim.clock.now()}",
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED"},
        "lifecycleState": "PUBLISHED",
    }
    async with http.post(f"{sim.urls.linkedin}/rest/posts", json=body, headers=headers) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def test_a_sunset_linkedin_version_is_answered_426(http: aiohttp.ClientSession) -> None:
    # 202510 sets on October 15, 2026 (learn.microsoft.com/linkedin/marketing/.../migrations).
    async with Simulator(CONFIG, clock=SimClock(at(date(2026, 10, 14)))) as sim:
        member = sim.add_account(LI)
        assert (await li_post(sim, http, member, "202510"))[0] == 201
        sim.advance_clock(DAY_S)
        assert await li_post(sim, http, member, "202510") == (
            426,
            {
                "status": 426,
                "code": "NONEXISTENT_VERSION",
                "message": "Requested version 20251001 is not active",
            },
        )
        assert len(sim.audit.posts()) == 1


def test_the_simulators_calendar() -> None:
    day = date(2026, 12, 7)
    assert graph_serving("v23.0", day) == "v23.0"
    assert graph_serving("v20.0", day) == "v21.0"
    assert graph_serving("v2.3", day) == "v21.0"  # long gone, still served
    assert graph_serving("v21.0", date(2027, 1, 21)) == "v22.0"
    assert graph_serving("v27.0", day) is None
    # A version the migrations page does not date yet: the 15th of its month a year on.
    assert linkedin_active("202606", date(2027, 6, 14))
    assert not linkedin_active("202606", date(2027, 6, 15))
    assert not linkedin_active("202701", day)  # not released
    assert not linkedin_active("202613", day)


def test_herald_speaks_live_versions_by_default() -> None:
    """Herald's defaults are served, by the simulator's own calendar, on the day they were
    chosen (2026-12-07) and for the 90 days Herald warns ahead."""
    for day in (date(2026, 12, 7), date(2027, 3, 7)):
        for settings in (FacebookSettings(), InstagramSettings()):
            version = settings.base_url.rsplit("/", 1)[1]
            assert graph_serving(version, day) == version
        assert linkedin_active(LinkedInSettings().api_version, day)
