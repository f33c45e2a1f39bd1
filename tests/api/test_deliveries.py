"""Deliveries: read with attempts, retried after a failure, cancelled one by one."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from herald.domain import Content, NewPost, Post, Transition, utcnow
from herald.states import DeliveryState
from tests.api.conftest import assert_problem, later
from tests.api.test_posts import publish_all

S = DeliveryState


async def test_get_delivery(tenant):
    channel = await tenant.channel()
    post = await tenant.post_on([channel])
    delivery_id = post["deliveries"][0]["id"]
    body = (await tenant.get(f"/v1/deliveries/{delivery_id}")).json()
    assert body["id"] == delivery_id
    assert body["post_id"] == post["id"]
    assert body["attempts"] == []
    assert_problem(await tenant.get("/v1/deliveries/dlv_nope"), 404)


async def test_retry_a_failed_delivery(tenant, api_store):
    channel = await tenant.channel()
    post = await tenant.post_on([channel], scheduled_at=later(seconds=-1))
    [delivery_id] = await publish_all(api_store, S.FAILED)
    before = await api_store.get_delivery(delivery_id)
    assert before.state is S.FAILED
    retried = await tenant.post(f"/v1/deliveries/{delivery_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "scheduled"
    after = await api_store.get_delivery(delivery_id)
    assert after.state is S.SCHEDULED
    assert after.retries == 0
    assert after.next_attempt_at is not None
    assert abs(after.next_attempt_at - utcnow()) < timedelta(seconds=5)
    # Due now: a delivery that failed long ago must not expire the moment it is claimed.
    assert after.due_at >= before.due_at
    again = await tenant.post(f"/v1/deliveries/{delivery_id}/retry")
    assert_problem(again, 409)
    assert post["id"] == after.post_id


async def test_retry_an_unconfirmed_delivery_keeps_its_look_up(tenant, api_store):
    channel = await tenant.channel()
    await tenant.post_on([channel], scheduled_at=later(seconds=-1))
    now = utcnow()
    batch = await api_store.claim_due(
        now=now,
        limit=10,
        lease_until=now + timedelta(minutes=5),
        expire_before=now - timedelta(days=1),
    )
    job = batch.jobs[0]
    await api_store.apply(
        [Transition(job.delivery.id, S.PUBLISHING, claim_token=job.claim_token, sent=True)]
    )
    await api_store.apply(
        [
            Transition(
                job.delivery.id,
                S.UNCONFIRMED,
                claim_token=job.claim_token,
                next_attempt_at=None,
                check_first=True,
                error="no answer",
            )
        ]
    )
    retried = await tenant.post(f"/v1/deliveries/{job.delivery.id}/retry")
    assert retried.status_code == 200
    after = await api_store.get_delivery(job.delivery.id)
    assert after.state is S.SCHEDULED
    assert after.check_first  # never resent on a guess: looked up first


async def test_only_failed_or_unconfirmed_deliveries_are_retried(tenant):
    channel = await tenant.channel()
    post = await tenant.post_on([channel])
    problem = assert_problem(
        await tenant.post(f"/v1/deliveries/{post['deliveries'][0]['id']}/retry"), 409
    )
    assert "scheduled" in problem["detail"]


async def test_retry_on_a_deleted_channel_is_a_conflict(tenant, api_store):
    channel = await tenant.channel()
    await tenant.post_on([channel], scheduled_at=later(seconds=-1))
    [delivery_id] = await publish_all(api_store, S.FAILED)
    await tenant.delete(f"/v1/channels/{channel['id']}")
    assert_problem(await tenant.post(f"/v1/deliveries/{delivery_id}/retry"), 409)


async def test_cancel_one_delivery(tenant, api_store):
    a, b = await tenant.channel(), await tenant.channel()
    post = await tenant.post_on([a, b])
    first, second = (d["id"] for d in post["deliveries"])
    cancelled = await tenant.post(f"/v1/deliveries/{first}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert (await tenant.post(f"/v1/deliveries/{first}/cancel")).status_code == 200
    assert (await api_store.get_delivery(second)).state is S.SCHEDULED


async def test_a_claimed_delivery_can_be_cancelled_and_its_engine_loses_the_claim(
    tenant, api_store
):
    channel = await tenant.channel()
    post = await tenant.post_on([channel], scheduled_at=later(seconds=-1))
    now = utcnow()
    batch = await api_store.claim_due(
        now=now,
        limit=10,
        lease_until=now + timedelta(minutes=5),
        expire_before=now - timedelta(days=1),
    )
    job = batch.jobs[0]
    assert (await tenant.post(f"/v1/posts/{post['id']}/cancel")).status_code == 200
    sending = Transition(job.delivery.id, S.PUBLISHING, claim_token=job.claim_token, sent=True)
    assert await api_store.apply([sending]) == [False]


async def test_a_publishing_delivery_cannot_be_cancelled(tenant, api_store):
    channel = await tenant.channel()
    post = await tenant.post_on([channel], scheduled_at=later(seconds=-1))
    now = utcnow()
    batch = await api_store.claim_due(
        now=now,
        limit=10,
        lease_until=now + timedelta(minutes=5),
        expire_before=now - timedelta(days=1),
    )
    job = batch.jobs[0]
    await api_store.apply(
        [Transition(job.delivery.id, S.PUBLISHING, claim_token=job.claim_token, sent=True)]
    )
    assert_problem(await tenant.post(f"/v1/posts/{post['id']}/cancel"), 409)
    assert_problem(await tenant.post(f"/v1/deliveries/{job.delivery.id}/cancel"), 409)


async def test_ids_made_before_ids_began_with_their_time_are_still_found(tenant, api_store):
    """Ids were 20 random hex digits before they began with the millisecond they were made;
    such rows stay reachable by every path, beside new ones."""
    made = await tenant.channel()
    old = replace(await api_store.get_channel(made["id"]), id="ch_3f9c0a1b2c3d4e5f6a7b")
    await api_store.add_channels([replace(old, external_id="page-from-before")])
    post = Post(
        "post_9f8e7d6c5b4a3f2e1d0c", Content(text="From before"), workspace_id=old.workspace_id
    )
    due = utcnow() + timedelta(days=1)
    await api_store.add_posts([NewPost.at(post, [("dlv_0123456789abcdef0123", old.id)], due)])
    got = (await tenant.get("/v1/posts/post_9f8e7d6c5b4a3f2e1d0c")).json()
    assert [d["id"] for d in got["deliveries"]] == ["dlv_0123456789abcdef0123"]
    assert (await tenant.get("/v1/deliveries/dlv_0123456789abcdef0123")).status_code == 200
    new = await tenant.post_on([{"id": old.id}])  # a new post on a channel from before
    assert len(new["id"]) == len("post_") + 32
    cancelled = await tenant.post("/v1/deliveries/dlv_0123456789abcdef0123/cancel")
    assert cancelled.json()["status"] == "cancelled"
