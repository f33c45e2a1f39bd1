"""What the simulated Graph API reads and answers as Graph does (docs/platforms.md): the token
and array parameters in a POST body, ``GraphMethodException`` for an unknown node,
``WWW-Authenticate`` on a refused token, and Instagram's call counting."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from herald.domain import Platform
from herald.simulator import (
    FaultConfig,
    InstagramSim,
    SimAccount,
    Simulator,
    SimulatorConfig,
)
from tests.integration.sim_calls import call, exact_config

FB = Platform.FACEBOOK
IG = Platform.INSTAGRAM


def config(**overrides: Any) -> SimulatorConfig:
    return exact_config(**overrides)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config()) as simulator:
        yield simulator


def token(account: SimAccount) -> str:
    return account.credentials["access_token"]


# -- the token and arrays in a POST body --------------------------------------------------------


async def test_token_in_a_form_or_json_body(sim: Simulator, http: aiohttp.ClientSession) -> None:
    page = sim.add_account(FB)
    url = f"{sim.urls.facebook}/{page.external_id}/feed"
    form = {"message": "from a form", "access_token": token(page)}
    status, body, _ = await call(http, "POST", url, data=form)
    assert status == 200, body
    doc = {"message": "from JSON", "access_token": token(page)}
    status, body, _ = await call(http, "POST", url, json=doc)
    assert status == 200, body
    assert [p.text for p in sim.audit.posts()] == ["from a form", "from JSON"]
    # The token is not a parameter: a body holding only the token has nothing to post.
    status, body, _ = await call(http, "POST", url, json={"access_token": token(page)})
    assert (status, body["error"]["code"]) == (400, 100)
    status, body, _ = await call(http, "POST", url, data={"access_token": "nonsense"})
    assert (status, body["error"]["code"]) == (400, 190)


async def upload_photo(
    sim: Simulator, http: aiohttp.ClientSession, page: SimAccount, name: str
) -> str:
    url = f"{sim.urls.facebook}/{page.external_id}/photos"
    photo = {"url": sim.media_url("image", name), "published": "false"}
    status, body, _ = await call(http, "POST", url, page, data=photo)
    assert status == 200, body
    return str(body["id"])


async def test_form_arrays_are_read_as_graph_reads_them(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page = sim.add_account(FB)
    url = f"{sim.urls.facebook}/{page.external_id}/feed"
    first, second, third = [await upload_photo(sim, http, page, f"{n}.jpg") for n in range(3)]
    form = {
        "message": "three photos",
        "attached_media[0][media_fbid]": first,  # an object, field by field
        "attached_media[1]": json.dumps({"media_fbid": second}),  # an object as JSON text
        "attached_media[2][media_fbid]": third,
    }
    status, body, _ = await call(http, "POST", url, page, data=form)
    assert status == 200, body
    # Each photo was attached: none can be attached again.
    again = {"message": "again", "attached_media[0][media_fbid]": first}
    status, body, _ = await call(http, "POST", url, page, data=again)
    assert (status, body["error"]["code"]) == (400, 100)
    assert "attached_media[0]" in body["error"]["message"]


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", [FB, IG], ids=["facebook", "instagram"])
async def test_unknown_node_is_a_graph_method_exception(
    sim: Simulator, http: aiohttp.ClientSession, platform: Platform
) -> None:
    account = sim.add_account(platform)
    base = getattr(sim.urls, platform.value)
    status, body, _ = await call(http, "GET", f"{base}/17999999999999999", account)
    error = body["error"]
    assert status == 400
    assert (error["type"], error["code"], error["error_subcode"]) == (
        "GraphMethodException",
        100,
        33,
    )
    assert error["message"].startswith(
        "Unsupported get request. Object with ID '17999999999999999' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation."
    )
    edge = "feed" if platform is FB else "media"
    status, body, _ = await call(http, "POST", f"{base}/1000000000001/{edge}", account, json={})
    assert body["error"]["message"].startswith("Unsupported post request. Object with ID")


async def test_refused_token_carries_www_authenticate(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    page = sim.add_account(FB)
    url = f"{sim.urls.facebook}/{page.external_id}/published_posts"
    status, body, headers = await call(http, "GET", url, params={"access_token": "nonsense"})
    assert (status, body["error"]["code"]) == (400, 190)
    assert headers["WWW-Authenticate"] == (
        'OAuth "Facebook Platform" "invalid_token" '
        '"Invalid OAuth access token - Cannot parse access token"'
    )
    sim.revoke(FB, page.external_id)
    status, body, headers = await call(http, "GET", url, page)
    assert body["error"]["error_subcode"] == 460
    assert headers["WWW-Authenticate"].startswith('OAuth "Facebook Platform" "invalid_token" ')
    # A refusal that is not about the token carries none.
    other = sim.add_account(FB)
    status, body, headers = await call(http, "GET", url, other)
    assert (status, "WWW-Authenticate" in headers) == (403, False)


# -- Instagram: calls counted -------------------------------------------------------------------


async def test_instagram_calls_are_counted_and_throttled_with_80002(
    http: aiohttp.ClientSession,
) -> None:
    async with Simulator(config(instagram=InstagramSim(calls_per_24h=4))) as sim:
        user = sim.add_account(IG)
        base = sim.urls.instagram
        image = {"image_url": sim.media_url("image", "a.jpg"), "caption": "c"}
        status, body, headers = await call(
            http, "POST", f"{base}/{user.external_id}/media", user, json=image
        )
        assert status == 200
        [usage] = json.loads(headers["X-Business-Use-Case-Usage"])[user.external_id]
        assert (usage["type"], usage["call_count"]) == ("instagram", 25)
        assert "X-App-Usage" not in headers
        poll = f"{base}/{body['id']}"
        for percent in (50, 75, 100):
            status, _, headers = await call(http, "GET", poll, user, params={"fields": "status"})
            assert status == 200
            usage = json.loads(headers["X-Business-Use-Case-Usage"])[user.external_id][0]
            assert usage["call_count"] == percent
        assert sim.audit.violations() == []

        status, body, headers = await call(http, "GET", poll, user, params={"fields": "status"})
        error = body["error"]
        assert (status, error["code"], error["is_transient"]) == (400, 80002, True)
        [usage] = json.loads(headers["X-Business-Use-Case-Usage"])[user.external_id]
        assert (usage["type"], usage["call_count"]) == ("instagram", 100)
        assert usage["estimated_time_to_regain_access"] == 24 * 60
        # 4800 x impressions is a figure Herald cannot know: a refusal it obeys, not a
        # violation of a limit it keeps.
        assert sim.audit.violations() == []
        [refusal] = sim.audit.refusals()
        assert (refusal.platform, refusal.rule) == (IG, "calls")

        sim.advance_clock(86_400)
        status, _, _ = await call(http, "GET", poll, user)
        assert status == 200


async def test_container_read_without_fields_is_its_id(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    user = sim.add_account(IG)
    image = {"image_url": sim.media_url("image", "a.jpg"), "caption": "c"}
    _, body, _ = await call(
        http, "POST", f"{sim.urls.instagram}/{user.external_id}/media", user, json=image
    )
    container = body["id"]
    status, body, _ = await call(http, "GET", f"{sim.urls.instagram}/{container}", user)
    assert (status, body) == (200, {"id": container})
    _, body, _ = await call(
        http, "GET", f"{sim.urls.instagram}/{container}", user, params={"fields": "status_code"}
    )
    assert body == {"id": container, "status_code": "FINISHED"}


async def test_instagram_server_error_is_marked_transient(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    user = sim.add_account(IG)
    base = f"{sim.urls.instagram}/{user.external_id}"
    image = {"image_url": sim.media_url("image", "a.jpg"), "caption": "c"}
    _, body, _ = await call(http, "POST", f"{base}/media", user, json=image)
    sim.set_faults(IG, FaultConfig(error_rate=1.0))
    status, body, _ = await call(
        http, "POST", f"{base}/media_publish", user, json={"creation_id": body["id"]}
    )
    error = body["error"]
    assert (status, error["code"], error["error_subcode"]) == (400, -1, 2207001)
    assert error["is_transient"] is True
