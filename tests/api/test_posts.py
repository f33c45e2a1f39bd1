"""Posts: the three time forms, per-platform validation before storing, listing, actions."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from herald.api import create_app
from herald.domain import Platform, Transition, utcnow
from herald.platforms.rules import VALIDATORS
from herald.states import DeliveryState
from tests.api.conftest import IMAGE, VIDEO, Tenant, assert_problem, later

S = DeliveryState
Y = utcnow().year + 1  # a year ahead, well within the scheduling horizon


def last_sunday(month: int) -> int:
    """The day of the last Sunday of ``month`` in year Y (European DST changes)."""
    day = datetime(Y, month, 31 if month in (3, 10) else 30)
    return (day - timedelta(days=(day.weekday() + 1) % 7)).day


SPRING, AUTUMN = last_sunday(3), last_sunday(10)


async def count_posts(store, workspace_id) -> int:
    return len(await store.list_posts(workspace_id, limit=10_000))


async def test_create_answers_201_with_deliveries_in_utc(tenant):
    fb = await tenant.channel(Platform.FACEBOOK)
    li = await tenant.channel(Platform.LINKEDIN)
    response = await tenant.post(
        "/v1/posts",
        {
            "channel_ids": [fb["id"], li["id"]],
            "content": {"text": "Fresh croissants", "link": "https://acme.test/menu"},
            "scheduled_at": f"{Y}-03-01T09:00:00+02:00",
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/posts/{body['id']}"
    assert body["id"].startswith("post_")
    assert [d["channel_id"] for d in body["deliveries"]] == [fb["id"], li["id"]]
    for delivery in body["deliveries"]:
        assert delivery["id"].startswith("dlv_")
        assert delivery["status"] == "scheduled"
        assert delivery["scheduled_at"] == f"{Y}-03-01T07:00:00Z"
    assert body["content"]["link"] == "https://acme.test/menu"


async def test_local_time_in_a_given_zone_and_in_each_channel_zone(tenant):
    paris = await tenant.channel(timezone="Europe/Paris")
    tokyo = await tenant.channel(Platform.LINKEDIN, timezone="Asia/Tokyo")
    given = await tenant.post_on(
        [paris, tokyo], local_time=f"{Y}-07-01T09:00", timezone="America/New_York"
    )
    assert {d["scheduled_at"] for d in given["deliveries"]} == {f"{Y}-07-01T13:00:00Z"}
    own = await tenant.post_on([paris, tokyo], local_time=f"{Y}-07-01T09:00")
    times = {d["channel_id"]: d["scheduled_at"] for d in own["deliveries"]}
    assert times == {paris["id"]: f"{Y}-07-01T07:00:00Z", tokyo["id"]: f"{Y}-07-01T00:00:00Z"}


async def test_dst_gap_is_refused_unless_shifted_and_fold_picks_the_first(tenant, api_store):
    channel = await tenant.channel()
    gap = {
        "channel_ids": [channel["id"]],
        "content": {"text": "x"},
        "local_time": f"{Y}-03-{SPRING}T02:30",
        "timezone": "Europe/Paris",
    }
    body = assert_problem(await tenant.post("/v1/posts", gap), 422, "local_time")
    assert "does not exist" in body["errors"][0]["message"]
    assert await count_posts(api_store, tenant.workspace_id) == 0
    shifted = await tenant.post("/v1/posts", {**gap, "on_gap": "shift"})
    assert shifted.json()["deliveries"][0]["scheduled_at"] == f"{Y}-03-{SPRING}T01:30:00Z"
    fold = {**gap, "local_time": f"{Y}-10-{AUTUMN}T02:30"}
    first = await tenant.post("/v1/posts", fold)
    assert first.json()["deliveries"][0]["scheduled_at"] == f"{Y}-10-{AUTUMN}T00:30:00Z"
    second = await tenant.post("/v1/posts", {**fold, "on_fold": "later"})
    assert second.json()["deliveries"][0]["scheduled_at"] == f"{Y}-10-{AUTUMN}T01:30:00Z"


@pytest.mark.parametrize(
    ("when", "field"),
    [
        ({"local_time": f"{Y}-07-01T09:00", "timezone": "Mars/Olympus"}, "timezone"),
        ({"scheduled_at": f"{Y}-07-01T09:00:00"}, "scheduled_at"),  # no offset: ambiguous
        ({"scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at"),  # the past
        ({"scheduled_at": "9999-12-31T23:59:59Z"}, "scheduled_at"),  # beyond the horizon
        ({"local_time": "0001-01-01T00:00", "timezone": "America/New_York"}, "local_time"),
        ({"local_time": "9999-12-31T23:59", "timezone": "Pacific/Kiritimati"}, "local_time"),
        ({"local_time": f"{Y}-07-01T09:00+02:00", "timezone": "Europe/Paris"}, "local_time"),
        ({}, "scheduled_at"),  # no time at all
        ({"scheduled_at": f"{Y}-07-01T09:00:00Z", "next_free_slot": True}, "scheduled_at"),
        ({"scheduled_at": f"{Y}-07-01T09:00:00Z", "timezone": "UTC"}, "timezone"),
        ({"scheduled_at": "yesterday"}, "scheduled_at"),
        ({"on_gap": "jump", "local_time": f"{Y}-07-01T09:00"}, "on_gap"),
        ({"next_free_slot": "true"}, "next_free_slot"),  # a JSON boolean, not a string
        ({"next_free_slot": 1}, "next_free_slot"),
        # Files of the zone database, not zones to schedule in.
        ({"local_time": f"{Y}-07-01T09:00", "timezone": "right/UTC"}, "timezone"),
        ({"local_time": f"{Y}-07-01T09:00", "timezone": "posix/Europe/Paris"}, "timezone"),
        ({"local_time": f"{Y}-07-01T09:00", "timezone": "Factory"}, "timezone"),
        ({"local_time": f"{Y}-07-01T09:00", "timezone": "localtime"}, "timezone"),
    ],
)
async def test_bad_times_name_the_field_and_store_nothing(tenant, api_store, when, field):
    channel = await tenant.channel()
    body = {"channel_ids": [channel["id"]], "content": {"text": "x"}, **when}
    assert_problem(await tenant.post("/v1/posts", body), 422, field)
    assert await count_posts(api_store, tenant.workspace_id) == 0


async def test_a_time_just_past_is_within_the_grace(tenant):
    channel = await tenant.channel()
    post = await tenant.post_on([channel], scheduled_at=later(seconds=-30))
    assert post["deliveries"][0]["status"] == "scheduled"


@pytest.mark.parametrize(
    ("platform", "content", "overrides", "field"),
    [
        (Platform.INSTAGRAM, {"text": "no media"}, {}, "content.media"),
        (Platform.YOUTUBE, {"text": "no video", "media": [IMAGE]}, {}, "content.media"),
        (
            Platform.YOUTUBE,
            {"text": "t", "media": [VIDEO], "title": "x" * 101},
            {},
            "content.title",
        ),
        (Platform.LINKEDIN, {"text": "x" * 3001}, {}, "content.text"),
        (Platform.LINKEDIN, {"text": "two", "media": [IMAGE, IMAGE]}, {}, "content.media"),
        (Platform.FACEBOOK, {"text": ""}, {}, "content.text"),
        (Platform.FACEBOOK, {"text": "video", "media": [VIDEO]}, {}, "content.media"),
        (Platform.INSTAGRAM, {"text": "#a " * 31, "media": [IMAGE]}, {}, "content.text"),
        (
            Platform.YOUTUBE,
            {"text": "base"},
            {"youtube": {"media": [IMAGE]}},
            "overrides.youtube.media",
        ),
    ],
)
async def test_platform_rules_apply_before_storing(
    tenant, api_store, *, platform, content, overrides, field
):
    channel = await tenant.channel(platform)
    body = {
        "channel_ids": [channel["id"]],
        "content": content,
        "overrides": overrides,
        "scheduled_at": later(),
    }
    problem = assert_problem(await tenant.post("/v1/posts", body), 422, field)
    assert platform.value in problem["errors"][0]["message"]
    assert await count_posts(api_store, tenant.workspace_id) == 0


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"text": "x", "link": "ftp://example.com/x"}, "content.link"),
        ({"text": "x", "link": "not a url"}, "content.link"),
        (
            {"text": "x", "media": [{"url": "https://a/x.jpg", "kind": "gif"}]},
            "content.media[0].kind",
        ),
        (
            {"text": "x", "media": [{"url": "/relative.jpg", "kind": "image"}]},
            "content.media[0].url",
        ),
        ({"text": "x" * 63_207}, "content.text"),
        ({"text": "x", "media": [IMAGE] * 21}, "content.media"),
        ({"text": "x", "colour": "red"}, "content.colour"),
        ({"text": "bad \ud800 surrogate"}, "content.text"),
    ],
)
async def test_content_shape_is_validated(tenant, content, field):
    channel = await tenant.channel()
    body = {"channel_ids": [channel["id"]], "content": content, "scheduled_at": later()}
    response = await tenant.client.post(
        "/v1/posts",
        headers={**tenant.headers, "content-type": "application/json"},
        content=json.dumps(body).encode(),  # escapes the lone surrogate as \ud800
    )
    assert_problem(response, 422, field)


async def test_cross_platform_post_with_overrides(tenant):
    ig = await tenant.channel(Platform.INSTAGRAM)
    yt = await tenant.channel(Platform.YOUTUBE)
    fb = await tenant.channel(Platform.FACEBOOK)
    post = await tenant.post_on(
        [ig, yt, fb],
        content={"text": "New oven", "media": [IMAGE]},
        overrides={"youtube": {"media": [VIDEO], "title": "The oven"}},
    )
    assert {d["platform"] for d in post["deliveries"]} == {"instagram", "youtube", "facebook"}
    assert post["overrides"]["youtube"]["title"] == "The oven"


async def test_targets_must_be_the_callers_channels(tenant, other, api_store):
    mine = await tenant.channel()
    theirs = await other.channel()
    body = {
        "channel_ids": [mine["id"], theirs["id"]],
        "content": {"text": "x"},
        "scheduled_at": later(),
    }
    problem = assert_problem(await tenant.post("/v1/posts", body), 404)
    assert theirs["id"] in problem["detail"]
    unknown = {**body, "channel_ids": [mine["id"], "ch_doesnotexist"]}
    assert assert_problem(await tenant.post("/v1/posts", unknown), 404)["detail"] == problem[
        "detail"
    ].replace(theirs["id"], "ch_doesnotexist")
    twice = {**body, "channel_ids": [mine["id"], mine["id"]]}
    assert_problem(await tenant.post("/v1/posts", twice), 422, "channel_ids")
    assert await count_posts(api_store, tenant.workspace_id) == 0


# -- next free slot --------------------------------------------------------------------------
NOW = datetime(2030, 3, 27, 12, 0, tzinfo=UTC)  # a Wednesday; Paris springs forward on the 31st


@pytest.fixture
async def slotted(settings, api_store, notified):
    """A tenant on an app whose clock stands at NOW, and what the app told the engine."""
    app = create_app(
        settings, api_store, validators=VALIDATORS, notify=notified.append, clock=lambda: NOW
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://herald.test"
    ) as client:
        from herald.service.tenancy import Tenancy

        issued = await Tenancy(api_store).create_workspace("Slots")
        yield Tenant(issued.key.workspace_id, issued.token, client), notified


async def test_next_free_slot_per_channel_skips_taken_ones(slotted):
    tenant, notified = slotted
    paris = await tenant.channel(timezone="Europe/Paris")
    tokyo = await tenant.channel(Platform.LINKEDIN, timezone="Asia/Tokyo")
    slots = [{"day": "thursday", "time": "09:00"}, {"day": "sunday", "time": "02:30"}]
    for channel in (paris, tokyo):
        await tenant.put(f"/v1/channels/{channel['id']}/schedule", {"slots": slots})
    first = await tenant.post_on([paris, tokyo], next_free_slot=True)
    times = {d["channel_id"]: d["scheduled_at"] for d in first["deliveries"]}
    assert times == {paris["id"]: "2030-03-28T08:00:00Z", tokyo["id"]: "2030-03-28T00:00:00Z"}
    second = await tenant.post_on([paris], next_free_slot=True)
    # Sunday 02:30 does not exist in Paris that night: the slot moves to 03:30 CEST.
    assert second["deliveries"][0]["scheduled_at"] == "2030-03-31T01:30:00Z"
    third = await tenant.post_on([paris], next_free_slot=True)
    assert third["deliveries"][0]["scheduled_at"] == "2030-04-04T07:00:00Z"
    assert notified[-1] == datetime(2030, 4, 4, 7, 0, tzinfo=UTC)


async def test_a_channel_without_slots_is_a_clear_error(slotted, api_store):
    tenant, _ = slotted
    channel = await tenant.channel()
    body = {"channel_ids": [channel["id"]], "content": {"text": "x"}, "next_free_slot": True}
    problem = assert_problem(await tenant.post("/v1/posts", body), 422, "next_free_slot")
    assert "no posting slots" in problem["detail"]
    assert channel["id"] in problem["detail"]


async def test_cancelled_deliveries_free_their_slot(slotted):
    tenant, _ = slotted
    channel = await tenant.channel()
    await tenant.put(
        f"/v1/channels/{channel['id']}/schedule", {"slots": [{"day": "thursday", "time": "09:00"}]}
    )
    first = await tenant.post_on([channel], next_free_slot=True)
    await tenant.post(f"/v1/posts/{first['id']}/cancel")
    again = await tenant.post_on([channel], next_free_slot=True)
    assert again["deliveries"][0]["scheduled_at"] == first["deliveries"][0]["scheduled_at"]


async def test_concurrent_next_free_slot_requests_get_distinct_slots(slotted):
    tenant, _ = slotted
    channel = await tenant.channel()
    slots = [{"day": d, "time": "09:00"} for d in ("monday", "wednesday", "friday")]
    await tenant.put(f"/v1/channels/{channel['id']}/schedule", {"slots": slots})
    moved = await tenant.post_on([channel], scheduled_at="2030-03-28T10:00:00Z")
    body = {"channel_ids": [channel["id"]], "content": {"text": "x"}, "next_free_slot": True}
    answers = await asyncio.gather(
        *(tenant.post("/v1/posts", body) for _ in range(8)),
        tenant.post(f"/v1/posts/{moved['id']}/reschedule", {"next_free_slot": True}),
    )
    assert [a.status_code for a in answers] == [201] * 8 + [200]
    times = [a.json()["deliveries"][0]["scheduled_at"] for a in answers]
    assert len(set(times)) == 9, times


# -- listing ---------------------------------------------------------------------------------
async def test_list_with_filters_and_cursor_pages(tenant, api_store):
    a = await tenant.channel()
    b = await tenant.channel(Platform.LINKEDIN)
    made = [
        await tenant.post_on([a if i % 2 else b], content={"text": f"post {i}"}) for i in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await tenant.get("/v1/posts", params=params)).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [p["id"] for p in made]
    only_a = (await tenant.get("/v1/posts", params={"channel_id": a["id"]})).json()["items"]
    assert {p["deliveries"][0]["channel_id"] for p in only_a} == {a["id"]}
    assert len(only_a) == 3
    await tenant.post(f"/v1/posts/{made[0]['id']}/cancel")
    cancelled = (await tenant.get("/v1/posts", params={"status": "cancelled"})).json()["items"]
    assert [p["id"] for p in cancelled] == [made[0]["id"]]
    frm = (utcnow() + timedelta(minutes=30)).isoformat()
    to = (utcnow() + timedelta(hours=2)).isoformat()
    ranged = (
        await tenant.get("/v1/posts", params={"scheduled_from": frm, "scheduled_to": to})
    ).json()
    assert len(ranged["items"]) == 7
    empty = (await tenant.get("/v1/posts", params={"scheduled_from": to})).json()
    assert empty["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"cursor": "bm9jb2xvbg"}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 500}, "limit"),
        ({"status": "happy"}, "status"),
        ({"scheduled_from": "2030-01-01T00:00:00"}, "scheduled_from"),
        ({"scheduled_to": "soon"}, "scheduled_to"),
    ],
)
async def test_list_parameters_are_validated(tenant, params, field):
    assert_problem(await tenant.get("/v1/posts", params=params), 422, field)


async def test_get_post_shows_every_delivery_and_attempt(tenant, api_store):
    a, b = await tenant.channel(), await tenant.channel(Platform.LINKEDIN)
    post = await tenant.post_on([a, b], scheduled_at=later(seconds=-1))
    batch = await api_store.claim_due(
        now=utcnow(),
        limit=10,
        lease_until=utcnow() + timedelta(minutes=5),
        expire_before=utcnow() - timedelta(days=1),
    )
    job = batch.jobs[0]
    await api_store.apply(
        [Transition(job.delivery.id, S.PUBLISHING, claim_token=job.claim_token, sent=True)]
    )
    from herald.domain import Attempt

    now = utcnow()
    attempt = Attempt(job.delivery.id, 1, now, now, "published")
    await api_store.apply(
        [
            Transition(
                job.delivery.id,
                S.PUBLISHED,
                claim_token=job.claim_token,
                external_id="ext-1",
                published_at=now,
                attempt=attempt,
            )
        ]
    )
    body = (await tenant.get(f"/v1/posts/{post['id']}")).json()
    by_id = {d["id"]: d for d in body["deliveries"]}
    done = by_id[job.delivery.id]
    assert done["status"] == "published"
    assert done["external_id"] == "ext-1"
    assert [a["outcome"] for a in done["attempts"]] == ["published"]
    assert len(by_id) == 2


# -- cancel and reschedule -------------------------------------------------------------------
async def test_cancel_post(tenant, api_store):
    channel = await tenant.channel()
    post = await tenant.post_on([channel])
    cancelled = await tenant.post(f"/v1/posts/{post['id']}/cancel")
    assert cancelled.status_code == 200
    assert [d["status"] for d in cancelled.json()["deliveries"]] == ["cancelled"]
    again = await tenant.post(f"/v1/posts/{post['id']}/cancel")
    assert again.status_code == 200  # nothing left, all cancelled already: idempotent
    assert_problem(await tenant.post("/v1/posts/post_nope/cancel"), 404)


async def test_repeated_and_concurrent_cancels_all_answer_as_the_first_did(tenant, api_store):
    """A client retrying after a timeout, or two people at once: the post is cancelled as
    far as it can be, and every answer says so, also when one delivery was published."""
    a, b = await tenant.channel(), await tenant.channel(Platform.LINKEDIN)
    for concurrent in (False, True):
        post = await tenant.post_on([a, b], scheduled_at=later(seconds=-1))
        await publish_all(api_store, limit=1)  # one of its two deliveries went out
        cancel = f"/v1/posts/{post['id']}/cancel"
        if concurrent:
            answers = list(await asyncio.gather(*(tenant.post(cancel) for _ in range(4))))
        else:
            answers = [await tenant.post(cancel), await tenant.post(cancel)]
        assert [r.status_code for r in answers] == [200] * len(answers)
        assert len({r.text for r in answers}) == 1
        states = sorted(d["status"] for d in answers[0].json()["deliveries"])
        assert states == ["cancelled", "published"]


async def test_cancel_a_published_post_is_a_conflict(tenant, api_store):
    channel = await tenant.channel()
    post = await tenant.post_on([channel], scheduled_at=later(seconds=-1))
    await publish_all(api_store)
    assert_problem(await tenant.post(f"/v1/posts/{post['id']}/cancel"), 409)


async def publish_all(store, state=S.PUBLISHED, limit=100):
    now = utcnow()
    batch = await store.claim_due(
        now=now,
        limit=limit,
        lease_until=now + timedelta(minutes=5),
        expire_before=now - timedelta(days=1),
    )
    await store.apply(
        [
            Transition(j.delivery.id, S.PUBLISHING, claim_token=j.claim_token, sent=True)
            for j in batch.jobs
        ]
    )
    await store.apply(
        [
            Transition(
                j.delivery.id, state, claim_token=j.claim_token, external_id="x", error="boom"
            )
            for j in batch.jobs
        ]
    )
    return [j.delivery.id for j in batch.jobs]


async def test_reschedule_moves_waiting_deliveries(tenant, api_store):
    channel = await tenant.channel()
    post = await tenant.post_on([channel])
    moved = await tenant.post(
        f"/v1/posts/{post['id']}/reschedule", {"scheduled_at": f"{Y}-05-01T10:00:00Z"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["deliveries"][0]["scheduled_at"] == f"{Y}-05-01T10:00:00Z"
    stored = await api_store.get_delivery(post["deliveries"][0]["id"])
    assert stored.next_attempt_at == datetime(Y, 5, 1, 10, tzinfo=UTC)
    local = await tenant.post(
        f"/v1/posts/{post['id']}/reschedule", {"local_time": f"{Y}-05-01T10:00"}
    )
    assert local.json()["deliveries"][0]["scheduled_at"] == f"{Y}-05-01T08:00:00Z"
    bad = await tenant.post(
        f"/v1/posts/{post['id']}/reschedule", {"scheduled_at": "2001-01-01T00:00:00Z"}
    )
    assert_problem(bad, 422, "scheduled_at")
    await tenant.post(f"/v1/posts/{post['id']}/cancel")
    done = await tenant.post(f"/v1/posts/{post['id']}/reschedule", {"scheduled_at": later()})
    assert_problem(done, 409)
