"""Nothing dropped silently: a webhook's events listed (status, cursor), finished ones
replayed, a disabled webhook shown with its reason and enabled again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from herald.domain import ChannelStatus, utcnow
from tests.api.conftest import assert_problem

REAUTH = "channel.needs_reauth"
HOUR = timedelta(hours=1)


async def subscribed(tenant, events=(REAUTH,)) -> dict:
    made = await tenant.post("/v1/webhooks", {"url": "https://hooks.acme.test/h", "events": events})
    assert made.status_code == 201, made.text
    return made.json()


async def record(store, channel_id: str, count: int) -> None:
    """``count`` channel.needs_reauth events for the workspace's subscribed webhooks."""
    for _ in range(count):
        await store.set_channel_status(channel_id, ChannelStatus.NEEDS_REAUTH, event=REAUTH)


async def sent_failed_pending(store, tenant) -> tuple[dict, list[str]]:
    """A webhook with three events, settled as a sender would: sent, given up, to retry."""
    hook = await subscribed(tenant)
    ch = await tenant.channel()
    await record(store, ch["id"], 3)
    now = utcnow() + timedelta(seconds=1)
    events = await store.claim_webhook_events(now=now, limit=10, lease_until=now + HOUR)
    sent, failed, pending = sorted(e.id for e in events)
    await store.settle_webhook_event(sent, sent=True, next_attempt_at=None, error=None, at=now)
    for event_id, retry_at in ((failed, None), (pending, now + HOUR)):
        await store.settle_webhook_event(
            event_id,
            sent=False,
            next_attempt_at=retry_at,
            error="the receiver answered HTTP 503",
            at=now,
        )
    return hook, [sent, failed, pending]


async def test_a_new_webhook_is_enabled(tenant):
    hook = await subscribed(tenant, events=["delivery.failed", "webhook.disabled"])
    assert hook["events"] == ["delivery.failed", "webhook.disabled"]
    got = (await tenant.get(f"/v1/webhooks/{hook['id']}")).json()
    assert got["status"] == "enabled"
    assert (got["disabled_at"], got["disabled_reason"], got["failing_since"]) == (None,) * 3


async def test_events_are_listed_with_status_and_last_error(api_store, tenant):
    hook, (sent, failed, pending) = await sent_failed_pending(api_store, tenant)
    listed = await tenant.get(f"/v1/webhooks/{hook['id']}/events")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["next_cursor"] is None
    items = body["items"]
    assert [i["id"] for i in items] == [sent, failed, pending]
    assert [i["status"] for i in items] == ["sent", "failed", "pending"]
    assert [i["last_error"] for i in items] == [None] + ["the receiver answered HTTP 503"] * 2
    assert [i["attempts"] for i in items] == [1, 1, 1]
    assert items[1]["finished_at"] is not None
    assert items[2]["next_attempt_at"] is not None
    assert items[1]["event"] == REAUTH
    assert items[1]["payload"]["event"] == REAUTH
    only = await tenant.get(f"/v1/webhooks/{hook['id']}/events", params={"status": "failed"})
    assert [i["id"] for i in only.json()["items"]] == [failed]


async def test_events_are_paged_with_a_cursor(api_store, tenant):
    hook, ids = await sent_failed_pending(api_store, tenant)
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({} if cursor is None else {"cursor": cursor})
        page = (await tenant.get(f"/v1/webhooks/{hook['id']}/events", params=params)).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"cursor": "!!"}, "cursor"),
        ({"cursor": "AAEC"}, "cursor"),  # decodes, but to bytes no id is made of
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),  # over api.max_page_size
        ({"state": "failed"}, "state"),  # not a parameter of this route
    ],
)
async def test_the_listing_is_validated(tenant, params, field):
    hook = await subscribed(tenant)
    assert_problem(await tenant.get(f"/v1/webhooks/{hook['id']}/events", params=params), 422, field)


async def test_a_failed_event_is_replayed_with_fresh_attempts(api_store, tenant):
    hook, (sent, failed, pending) = await sent_failed_pending(api_store, tenant)
    replayed = await tenant.post(f"/v1/webhooks/{hook['id']}/events/{failed}/replay")
    assert replayed.status_code == 200, replayed.text
    body = replayed.json()
    assert (body["id"], body["status"], body["attempts"]) == (failed, "pending", 0)
    assert body["finished_at"] is None
    assert (await tenant.post(f"/v1/webhooks/{hook['id']}/events/{sent}/replay")).status_code == 200
    waiting = await tenant.get(f"/v1/webhooks/{hook['id']}/events", params={"status": "pending"})
    assert {i["id"] for i in waiting.json()["items"]} == {sent, failed, pending}


async def test_an_event_on_its_way_is_not_replayed(api_store, tenant):
    hook, (_, _, pending) = await sent_failed_pending(api_store, tenant)
    refused = assert_problem(
        await tenant.post(f"/v1/webhooks/{hook['id']}/events/{pending}/replay"), 409
    )
    assert "pending" in refused["detail"]


async def test_another_workspace_s_events_are_not_found(api_store, tenant, other):
    hook, (_, failed, _) = await sent_failed_pending(api_store, tenant)
    theirs = await subscribed(other)
    made_up = await other.post(f"/v1/webhooks/{theirs['id']}/events/evt_nope/replay")
    body = assert_problem(made_up, 404)
    foreign = await other.post(f"/v1/webhooks/{theirs['id']}/events/{failed}/replay")
    assert assert_problem(foreign, 404)["detail"] == body["detail"].replace("evt_nope", failed)
    assert_problem(await other.get(f"/v1/webhooks/{hook['id']}/events"), 404)
    assert_problem(await other.post(f"/v1/webhooks/{hook['id']}/events/{failed}/replay"), 404)
    assert_problem(await other.post(f"/v1/webhooks/{hook['id']}/enable"), 404)
    # Nothing was replayed by the refused calls.
    listed = await tenant.get(f"/v1/webhooks/{hook['id']}/events", params={"status": "failed"})
    assert [i["id"] for i in listed.json()["items"]] == [failed]


async def test_an_event_of_another_webhook_is_not_found_under_this_one(api_store, tenant):
    _, (_, failed, _) = await sent_failed_pending(api_store, tenant)
    second = await subscribed(tenant, events=("delivery.failed",))
    assert_problem(await tenant.post(f"/v1/webhooks/{second['id']}/events/{failed}/replay"), 404)
    assert (await tenant.get(f"/v1/webhooks/{second['id']}/events")).json()["items"] == []


async def test_a_disabled_webhook_shows_why_and_is_enabled_again(api_store, tenant):
    hook, _ = await sent_failed_pending(api_store, tenant)  # its last attempt failed
    at = utcnow()
    assert await api_store.disable_webhook(hook["id"], reason="every attempt failed", at=at)
    got = (await tenant.get(f"/v1/webhooks/{hook['id']}")).json()
    assert got["status"] == "disabled"
    assert got["disabled_reason"] == "every attempt failed"
    assert got["disabled_at"] is not None
    assert got["failing_since"] is not None
    assert [w["status"] for w in (await tenant.get("/v1/webhooks")).json()] == ["disabled"]
    enabled = await tenant.post(f"/v1/webhooks/{hook['id']}/enable")
    assert enabled.status_code == 200, enabled.text
    body = enabled.json()
    assert (body["status"], body["disabled_at"], body["disabled_reason"]) == ("enabled", None, None)
    assert body["failing_since"] is None
    again = await tenant.post(f"/v1/webhooks/{hook['id']}/enable")  # nothing left to do
    assert again.json()["status"] == "enabled"
    assert_problem(await tenant.post("/v1/webhooks/wh_nope/enable"), 404)
