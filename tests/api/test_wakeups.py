"""What the API tells an engine in its process: the earliest due time of every delivery it adds
or moves, so that the engine claims it on time; nothing for changes that make nothing due."""

from __future__ import annotations

from datetime import UTC, datetime

from herald.domain import ChannelStatus, Platform, utcnow
from herald.states import DeliveryState
from tests.api.conftest import assert_problem, imported, later
from tests.api.test_posts import Y, publish_all

S = DeliveryState


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_new_post_wakes_the_engine_for_its_earliest_delivery(tenant, notified):
    paris = await tenant.channel(timezone="Europe/Paris")
    tokyo = await tenant.channel(Platform.LINKEDIN, timezone="Asia/Tokyo")
    await tenant.post_on([paris, tokyo], local_time=f"{Y}-07-01T09:00")
    assert notified == [datetime(Y, 7, 1, 0, 0, tzinfo=UTC)]  # Tokyo's 09:00 comes first


async def test_a_refused_post_wakes_nothing(tenant, notified):
    channel = await tenant.channel()
    response = await tenant.post(
        "/v1/posts", {"channel_ids": [channel["id"]], "content": {"text": "x" * 70_000}}
    )
    assert_problem(response, 422)
    assert notified == []


async def test_an_import_wakes_the_engine_once_for_its_earliest_delivery(tenant, app, notified):
    channel = await tenant.channel()
    data = (
        "channel_ids,text,scheduled_at\r\n"
        f"{channel['id']},later,{Y}-03-02T09:00:00Z\r\n"
        f"{channel['id']},sooner,{Y}-03-01T09:00:00Z\r\n"
    )
    assert (await imported(tenant, app, data))["state"] == "succeeded"
    assert notified == [datetime(Y, 3, 1, 9, tzinfo=UTC)]  # once every post was made due


async def test_a_reschedule_wakes_the_engine_for_the_earliest_new_time(tenant, notified):
    paris = await tenant.channel(timezone="Europe/Paris")
    tokyo = await tenant.channel(Platform.LINKEDIN, timezone="Asia/Tokyo")
    post = await tenant.post_on([paris, tokyo], scheduled_at=f"{Y}-03-01T09:00:00Z")
    url = f"/v1/posts/{post['id']}/reschedule"
    assert (await tenant.post(url, {"local_time": f"{Y}-07-01T09:00"})).status_code == 200
    assert notified[-1] == datetime(Y, 7, 1, 0, 0, tzinfo=UTC)  # Tokyo's 09:00
    count = len(notified)
    assert (await tenant.post(f"/v1/posts/{post['id']}/cancel")).status_code == 200
    assert len(notified) == count  # a cancel makes nothing due


async def test_a_retry_wakes_the_engine_now(tenant, api_store, notified):
    channel = await tenant.channel()
    await tenant.post_on([channel], scheduled_at=later(seconds=-1))
    [delivery_id] = await publish_all(api_store, S.FAILED)
    before = utcnow()
    retried = await tenant.post(f"/v1/deliveries/{delivery_id}/retry")
    assert retried.status_code == 200, retried.text
    assert before <= notified[-1] <= utcnow()
    assert notified[-1] == at(retried.json()["next_attempt_at"])


async def test_a_channel_made_active_again_wakes_the_engine(tenant, api_store, notified):
    channel = await tenant.channel()
    url = f"/v1/channels/{channel['id']}"
    await tenant.patch(url, {"status": "disabled"})
    await tenant.patch(url, {"name": "Renamed"})
    assert notified == []  # nothing became claimable
    before = utcnow()
    assert (await tenant.patch(url, {"status": "active"})).status_code == 200
    assert len(notified) == 1
    assert before <= notified[0] <= utcnow()
    await api_store.set_channel_status(channel["id"], ChannelStatus.NEEDS_REAUTH)
    before = utcnow()
    fixed = await tenant.patch(url, {"credentials": {"access_token": "new-token"}})
    assert fixed.json()["status"] == "active"
    assert len(notified) == 2
    assert before <= notified[1] <= utcnow()
