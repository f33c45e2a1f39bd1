"""Channels: credentials encrypted at rest and never shown, re-authorisation, slots."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from herald.domain import ChannelStatus, Platform
from herald.states import DeliveryState
from tests.api.conftest import CREDENTIALS, VIDEO, assert_problem


async def test_create_channel_encrypts_credentials(tenant, api_store, secret_key):
    made = await tenant.post(
        "/v1/channels",
        {
            "platform": "facebook",
            "external_id": "104857600012345",
            "name": "Acme Bakery",
            "timezone": "Europe/Paris",
            "credentials": {"access_token": "EAAB-very-secret"},
        },
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert made.headers["location"] == f"/v1/channels/{body['id']}"
    assert body["status"] == "active"
    assert "EAAB-very-secret" not in made.text
    assert "credentials" not in body
    stored = await api_store.get_channel(body["id"])
    assert stored.credentials_ref == "vault:"
    assert stored.workspace_id == tenant.workspace_id
    ciphertext = await api_store.get_channel_secret(body["id"])
    assert b"EAAB-very-secret" not in ciphertext
    plain = json.loads(Fernet(secret_key).decrypt(ciphertext))
    assert plain == {"access_token": "EAAB-very-secret"}
    for url in ("/v1/channels", f"/v1/channels/{body['id']}"):
        assert "EAAB-very-secret" not in (await tenant.get(url)).text


async def test_list_get_and_rename(tenant):
    a = await tenant.channel(Platform.FACEBOOK)
    b = await tenant.channel(Platform.LINKEDIN, timezone="America/New_York")
    listed = (await tenant.get("/v1/channels")).json()
    assert sorted(c["id"] for c in listed) == sorted([a["id"], b["id"]])
    got = await tenant.get(f"/v1/channels/{b['id']}")
    assert got.json()["timezone"] == "America/New_York"
    renamed = await tenant.patch(
        f"/v1/channels/{a['id']}", {"name": "Renamed", "timezone": "Asia/Tokyo"}
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["timezone"]) == ("Renamed", "Asia/Tokyo")


async def test_a_channel_publishes_from_the_region_it_was_created_in(tenant, api_store):
    made = await tenant.channel(Platform.FACEBOOK, region="eu-west-1")
    assert made["region"] == "eu-west-1"
    assert (await api_store.get_channel(made["id"])).region == "eu-west-1"
    plain = await tenant.channel(Platform.LINKEDIN)
    assert plain["region"] is None  # the deployment's
    # Set at creation only: a move between regions is not a field to patch.
    moved = await tenant.patch(f"/v1/channels/{made['id']}", {"region": "us-east-1"})
    assert_problem(moved, 422, "region")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"platform": "myspace"}, "platform"),
        ({"credentials": {}}, "credentials.access_token"),
        ({"credentials": {"access_token": ""}}, "credentials.access_token"),
        ({"credentials": {"access_token": "x", "password": "y"}}, "credentials.password"),
        ({"name": ""}, "name"),
        ({"external_id": "x" * 201}, "external_id"),
        ({"region": "EU West"}, "region"),
        ({"region": ""}, "region"),
        ({"region": "a" * 33}, "region"),
        ({"name": " \t "}, "name"),  # blank
        ({"external_id": "   "}, "external_id"),
        ({"timezone": "right/Europe/Paris"}, "timezone"),
        ({"timezone": "Factory"}, "timezone"),
    ],
)
async def test_create_is_validated(tenant, api_store, body, field):
    base = {
        "platform": "facebook",
        "external_id": "1",
        "name": "n",
        "timezone": "UTC",
        "credentials": {"access_token": "t"},
    }
    assert_problem(await tenant.post("/v1/channels", {**base, **body}), 422, field)
    assert await api_store.list_channels(tenant.workspace_id) == []


async def test_youtube_needs_refresh_credentials(tenant):
    body = {
        "platform": "youtube",
        "external_id": "UC123",
        "name": "yt",
        "credentials": {"access_token": "only"},
    }
    assert_problem(await tenant.post("/v1/channels", body), 422, "credentials.refresh_token")
    body["credentials"] = CREDENTIALS[Platform.YOUTUBE]
    assert (await tenant.post("/v1/channels", body)).status_code == 201


async def test_the_same_account_twice_is_a_conflict(tenant):
    await tenant.channel(external_id="page-1")
    body = {
        "platform": "facebook",
        "external_id": "page-1",
        "name": "again",
        "credentials": {"access_token": "t"},
    }
    assert_problem(await tenant.post("/v1/channels", body), 409, "external_id")


async def test_another_workspace_may_connect_the_same_account(tenant, other, api_store):
    # An agency and its client both connect the client's Page.
    mine = await tenant.channel(external_id="page-1")
    theirs = await other.channel(external_id="page-1")
    assert [c["id"] for c in (await other.get("/v1/channels")).json()] == [theirs["id"]]
    assert (await api_store.get_channel(theirs["id"])).workspace_id == other.workspace_id
    # A conflict comes only from the caller's own channels, and names nothing of another's.
    body = {
        "platform": "facebook",
        "external_id": "page-1",
        "name": "again",
        "credentials": {"access_token": "t"},
    }
    again = await other.post("/v1/channels", body)
    problem = assert_problem(again, 409, "external_id")
    assert "this workspace" in problem["detail"]
    assert mine["id"] not in again.text
    assert tenant.workspace_id not in again.text
    assert len(await api_store.list_channels()) == 2


async def test_reauthorisation_sets_the_channel_active(tenant, api_store, secret_key):
    channel = await tenant.channel()
    await api_store.set_channel_status(channel["id"], ChannelStatus.NEEDS_REAUTH)
    url = f"/v1/channels/{channel['id']}"
    assert (await tenant.get(url)).json()["status"] == "needs_reauth"
    refused = await tenant.patch(url, {"status": "active"})
    assert_problem(refused, 422, "credentials")
    fixed = await tenant.patch(url, {"credentials": {"access_token": "new-token"}})
    assert fixed.status_code == 200
    assert fixed.json()["status"] == "active"
    plain = json.loads(
        Fernet(secret_key).decrypt(await api_store.get_channel_secret(channel["id"]))
    )
    assert plain == {"access_token": "new-token"}


async def test_pause_and_resume(tenant):
    channel = await tenant.channel()
    url = f"/v1/channels/{channel['id']}"
    assert (await tenant.patch(url, {"status": "disabled"})).json()["status"] == "disabled"
    assert (await tenant.patch(url, {"status": "active"})).json()["status"] == "active"
    assert_problem(await tenant.patch(url, {"status": "needs_reauth"}), 422, "status")
    assert_problem(await tenant.patch(url, {"timezone": "Nowhere/Land"}), 422, "timezone")
    assert_problem(await tenant.patch(url, {"color": "red"}), 422, "color")


async def test_delete_cancels_pending_deliveries(tenant, api_store):
    channel = await tenant.channel()
    post = await tenant.post_on([channel])
    deleted = await tenant.delete(f"/v1/channels/{channel['id']}")
    assert deleted.status_code == 204
    assert_problem(await tenant.get(f"/v1/channels/{channel['id']}"), 404)
    assert_problem(await tenant.delete(f"/v1/channels/{channel['id']}"), 404)
    delivery = await api_store.get_delivery(post["deliveries"][0]["id"])
    assert delivery.state is DeliveryState.CANCELLED
    assert (await tenant.get("/v1/channels")).json() == []


async def test_weekly_schedule(tenant):
    channel = await tenant.channel(timezone="America/New_York")
    url = f"/v1/channels/{channel['id']}/schedule"
    empty = await tenant.get(url)
    assert empty.json() == {
        "channel_id": channel["id"],
        "timezone": "America/New_York",
        "slots": [],
    }
    slots = [
        {"day": "friday", "time": "17:00:00"},
        {"day": "monday", "time": "09:00:00"},
        {"day": "monday", "time": "09:00:00"},
    ]
    put = await tenant.put(url, {"slots": slots})
    assert put.status_code == 200
    assert put.json()["slots"] == [
        {"day": "monday", "time": "09:00:00"},
        {"day": "friday", "time": "17:00:00"},
    ]
    assert (await tenant.get(url)).json() == put.json()
    assert (await tenant.put(url, {"slots": []})).json()["slots"] == []


@pytest.mark.parametrize(
    "slot",
    [
        {"day": "funday", "time": "09:00"},
        {"day": "monday", "time": "25:00"},
        {"day": "monday", "time": "09:00:30"},
        {"day": "monday", "time": "09:00+02:00"},
    ],
)
async def test_schedule_is_validated(tenant, slot):
    channel = await tenant.channel()
    response = await tenant.put(f"/v1/channels/{channel['id']}/schedule", {"slots": [slot]})
    body = assert_problem(response, 422)
    assert body["field"].startswith("slots[0]")


async def test_youtube_channel_accepts_video_posts(tenant):
    channel = await tenant.channel(Platform.YOUTUBE)
    post = await tenant.post_on(
        [channel], content={"text": "Watch", "title": "A film", "media": [VIDEO]}
    )
    assert post["deliveries"][0]["platform"] == "youtube"
