"""The platforms' duplicate checks (:class:`~herald.simulator.DuplicateCheck`): Graph's 506
and LinkedIn's 422 usually refuse a repeat, not always (``refuse_share``), and only within
their memory (``memory_s``: six hours for Graph, a day for LinkedIn, by default)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from herald.config import LinkedInSettings
from herald.domain import Platform
from herald.simulator import (
    DuplicateCheck,
    FacebookSim,
    LinkedInSim,
    SimAccount,
    Simulator,
    SimulatorConfig,
)
from tests.integration.sim_calls import call, exact_config, linkedin_post

FB, LI = Platform.FACEBOOK, Platform.LINKEDIN
#: (accepted, refused as a duplicate) statuses of a post.
ANSWERS = {FB: (200, 400), LI: (201, 422)}
MEMORY_S = {FB: 6 * 3600.0, LI: 86_400.0}
REPEATS = 200


def config(platform: Platform, check: DuplicateCheck | None = None) -> SimulatorConfig:
    """A simulator whose ``platform`` takes a post a repeat at most; ``check`` its duplicate
    check (the platform's default if None)."""
    checked: dict[str, Any] = {} if check is None else {"duplicate_check": check}
    if platform is FB:
        return exact_config(facebook=FacebookSim(**checked), seed=5)
    return exact_config(linkedin=LinkedInSim(member_posts_per_day=1000, **checked), seed=5)


async def post(
    sim: Simulator, http: aiohttp.ClientSession, platform: Platform, account: SimAccount
) -> int:
    """The same text again; its status, after checking it is one of the two expected."""
    if platform is FB:
        url = f"{sim.urls.facebook}/{account.external_id}/feed"
        status, body, _ = await call(http, "POST", url, account, json={"message": "same"})
        if status != 200:
            assert body["error"]["code"] == 506
    else:
        li = {
            "LinkedIn-Version": LinkedInSettings().api_version,
            "X-Restli-Protocol-Version": "2.0.0",
        }
        body = linkedin_post(account.external_id, "same")
        status, _, _ = await call(
            http, "POST", f"{sim.urls.linkedin}/rest/posts", account, json=body, headers=li
        )
    assert status in ANSWERS[platform]
    return status


@pytest.mark.parametrize("platform", [FB, LI], ids=["graph", "linkedin"])
async def test_a_check_refuses_only_its_share_of_repeats(
    http: aiohttp.ClientSession, platform: Platform
) -> None:
    check = DuplicateCheck(refuse_share=0.5, memory_s=MEMORY_S[platform])
    async with Simulator(config(platform, check)) as sim:
        account = sim.add_account(platform)
        accepted, refused = ANSWERS[platform]
        assert await post(sim, http, platform, account) == accepted
        statuses = [await post(sim, http, platform, account) for _ in range(REPEATS)]
        # Binomial(200, 0.5): 100 +- 7 refused; the band is 4 standard deviations wide.
        assert 72 <= statuses.count(refused) <= 128
        assert sim.audit.duplicates_refused == statuses.count(refused)
        assert sim.audit.duplicates() == statuses.count(accepted)  # every one let through


@pytest.mark.parametrize("platform", [FB, LI], ids=["graph", "linkedin"])
async def test_a_check_forgets_after_its_memory(
    http: aiohttp.ClientSession, platform: Platform
) -> None:
    async with Simulator(config(platform)) as sim:
        account = sim.add_account(platform)
        accepted, refused = ANSWERS[platform]
        assert await post(sim, http, platform, account) == accepted
        sim.advance_clock(MEMORY_S[platform] - 1)
        assert await post(sim, http, platform, account) == refused  # still remembered
        sim.advance_clock(1)
        assert await post(sim, http, platform, account) == accepted  # forgotten
        assert await post(sim, http, platform, account) == refused  # the repeat is remembered
        assert (sim.audit.duplicates(), sim.audit.duplicates_refused) == (1, 2)
