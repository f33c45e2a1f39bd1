"""A key never sees or changes another workspace's data: 404, as if it did not exist.

Every route that takes an object id is called with a second workspace's key on objects of the
first; the answer must be the very 404 a made-up id gets, and nothing may change.
"""

from __future__ import annotations

import pytest

from herald.domain import Platform
from tests.api.conftest import IMAGE, assert_problem, imported, later


@pytest.fixture
async def objects(tenant, api_store):
    channel = await tenant.channel(Platform.FACEBOOK)
    post = await tenant.post_on([channel])
    webhook = (
        await tenant.post(
            "/v1/webhooks", {"url": "https://h.test/x", "events": ["delivery.failed"]}
        )
    ).json()
    key = (await tenant.post("/v1/api-keys", {"name": "second"})).json()
    return {
        "channel": channel["id"],
        "post": post["id"],
        "delivery": post["deliveries"][0]["id"],
        "webhook": webhook["id"],
        "key": key["id"],
    }


ROUTES = [
    ("GET", "/v1/channels/{channel}", None),
    ("PATCH", "/v1/channels/{channel}", {"name": "stolen"}),
    ("PATCH", "/v1/channels/{channel}", {"credentials": {"access_token": "x"}}),
    ("DELETE", "/v1/channels/{channel}", None),
    ("GET", "/v1/channels/{channel}/schedule", None),
    ("PUT", "/v1/channels/{channel}/schedule", {"slots": [{"day": "monday", "time": "09:00"}]}),
    ("GET", "/v1/posts/{post}", None),
    ("POST", "/v1/posts/{post}/cancel", None),
    ("POST", "/v1/posts/{post}/reschedule", {"scheduled_at": "LATER"}),
    ("GET", "/v1/deliveries/{delivery}", None),
    ("POST", "/v1/deliveries/{delivery}/retry", None),
    ("POST", "/v1/deliveries/{delivery}/cancel", None),
    ("GET", "/v1/webhooks/{webhook}", None),
    ("DELETE", "/v1/webhooks/{webhook}", None),
    ("GET", "/v1/api-keys/{key}", None),
    ("DELETE", "/v1/api-keys/{key}", None),
]


def _body(body):
    if body and body.get("scheduled_at") == "LATER":
        return {"scheduled_at": later()}
    return body


@pytest.mark.parametrize(("method", "template", "body"), ROUTES)
async def test_another_workspace_gets_404_as_if_nothing_existed(
    tenant, other, objects, *, method, template, body
):
    url = template.format(**objects)
    fake = template.format(**{k: f"{v[:3]}doesnotexist" for k, v in objects.items()})
    response = await other.client.request(method, url, headers=other.headers, json=_body(body))
    problem = assert_problem(response, 404)
    made_up = await other.client.request(method, fake, headers=other.headers, json=_body(body))
    assert problem["detail"] == assert_problem(made_up, 404)["detail"].replace(
        fake.split("/")[3], url.split("/")[3]
    )
    # ... and the owner still sees everything unchanged.
    assert (await tenant.get(f"/v1/channels/{objects['channel']}")).json()["name"] != "stolen"
    post = (await tenant.get(f"/v1/posts/{objects['post']}")).json()
    assert post["deliveries"][0]["status"] == "scheduled"
    assert (await tenant.get(f"/v1/webhooks/{objects['webhook']}")).status_code == 200
    assert (await tenant.get(f"/v1/api-keys/{objects['key']}")).json()["revoked_at"] is None
    schedule = (await tenant.get(f"/v1/channels/{objects['channel']}/schedule")).json()
    assert schedule["slots"] == []


async def test_listings_and_exports_show_only_the_callers_data(tenant, other, objects):
    assert (await other.get("/v1/channels")).json() == []
    assert (await other.get("/v1/posts")).json()["items"] == []
    assert (await other.get("/v1/posts", params={"channel_id": objects["channel"]})).json()[
        "items"
    ] == []
    assert (await other.get("/v1/webhooks")).json() == []
    assert [k["name"] for k in (await other.get("/v1/api-keys")).json()] == ["first key"]
    export = (await other.get("/v1/posts/export")).text
    assert objects["post"] not in export
    assert (await other.get("/v1/workspace")).json()["id"] == other.workspace_id


async def test_other_workspaces_channels_cannot_be_post_targets(tenant, other, app, objects):
    body = {
        "channel_ids": [objects["channel"]],
        "content": {"text": "x", "media": [IMAGE]},
        "scheduled_at": later(),
    }
    assert_problem(await other.post("/v1/posts", body), 404)
    csv = f"channel_ids,text,scheduled_at\n{objects['channel']},x,{later()}\n"
    job = await imported(other, app, csv)
    assert job["state"] == "failed"
    assert job["errors"][0]["field"] == "channel_ids"
    assert "not found" in job["errors"][0]["message"]


async def test_a_cursor_from_another_workspace_reveals_nothing(tenant, other, objects):
    page = (await tenant.get("/v1/posts", params={"limit": 1})).json()
    await tenant.post_on([{"id": objects["channel"]}])
    cursor = (await tenant.get("/v1/posts", params={"limit": 1})).json()["next_cursor"]
    assert cursor is not None
    assert page["items"]
    assert (await other.get("/v1/posts", params={"cursor": cursor})).json()["items"] == []


# -- deleting a workspace ----------------------------------------------------------------------
async def test_a_workspace_deleted_by_its_key_is_gone_and_the_others_are_not(
    tenant, other, objects, api_store
):
    kept = await other.post_on([await other.channel()])
    wrong = await tenant.client.delete(
        "/v1/workspace", params={"confirm": other.workspace_id}, headers=tenant.headers
    )
    assert_problem(wrong, 422, "confirm")
    assert_problem(await tenant.delete("/v1/workspace"), 422, "confirm")
    assert (await tenant.get("/v1/workspace")).status_code == 200  # nothing happened yet

    gone = await tenant.client.delete(
        "/v1/workspace", params={"confirm": tenant.workspace_id}, headers=tenant.headers
    )
    assert gone.status_code == 204, gone.text
    assert (await tenant.get("/v1/workspace")).status_code == 401  # its keys went with it
    assert await api_store.list_channels(tenant.workspace_id) == []
    assert await api_store.list_posts(tenant.workspace_id) == []
    # The other workspace still has everything it had.
    assert (await other.get("/v1/workspace")).status_code == 200
    assert (await other.get(f"/v1/posts/{kept['id']}")).status_code == 200
    for kind in ("channel", "post", "delivery", "webhook"):
        path = {"delivery": "deliveries"}.get(kind, f"{kind}s")
        assert (await other.get(f"/v1/{path}/{objects[kind]}")).status_code == 404


async def test_the_default_workspace_is_not_deleted(api_store, client):
    from herald.domain import DEFAULT_WORKSPACE
    from herald.service.tenancy import Tenancy

    issued = await Tenancy(api_store).issue_key(DEFAULT_WORKSPACE, "cli")
    answer = await client.delete(
        "/v1/workspace",
        params={"confirm": DEFAULT_WORKSPACE},
        headers={"Authorization": f"Bearer {issued.token}"},
    )
    assert_problem(answer, 409)
    assert await api_store.get_workspace(DEFAULT_WORKSPACE)
