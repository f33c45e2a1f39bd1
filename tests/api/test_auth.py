"""API keys: bearer authentication, hashed storage, listing, creation and revocation."""

from __future__ import annotations

import hashlib

import pytest

from herald.service.tenancy import Tenancy
from tests.api.conftest import assert_problem


async def test_every_v1_route_needs_a_key(client, tenant):
    for method, url in [
        ("GET", "/v1/posts"),
        ("POST", "/v1/posts"),
        ("GET", "/v1/channels"),
        ("GET", "/v1/webhooks"),
        ("GET", "/v1/api-keys"),
        ("GET", "/v1/deliveries/dlv_x"),
        ("GET", "/v1/posts/export"),
    ]:
        response = await client.request(method, url)
        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in body["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer nope",
        "Basic dXNlcjpwYXNz",
        "Bearer hk_00000000_" + "0" * 40,
        "Bearer",
        "bearer hk_zz",
    ],
)
async def test_bad_keys_are_refused(client, tenant, header):
    response = await client.get("/v1/channels", headers={"Authorization": header})
    assert_problem(response, 401)


async def test_a_key_with_the_wrong_secret_is_refused(client, tenant):
    prefix = tenant.token.rsplit("_", 1)[0]
    response = await client.get(
        "/v1/channels", headers={"Authorization": f"Bearer {prefix}_{'a' * 40}"}
    )
    assert_problem(response, 401)


async def test_keys_are_stored_hashed(api_store, tenant):
    prefix, secret = tenant.token.rsplit("_", 1)
    key, digest = await api_store.api_key_by_prefix(prefix)
    assert digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in digest
    assert key.workspace_id == tenant.workspace_id


async def test_workspace_of_the_key(tenant):
    response = await tenant.get("/v1/workspace")
    assert response.status_code == 200
    assert response.json() == {"id": tenant.workspace_id, "name": "Acme"}


async def test_create_list_and_revoke_keys(tenant):
    made = await tenant.post("/v1/api-keys", {"name": "deploy bot"})
    assert made.status_code == 201
    body = made.json()
    assert body["key"].startswith(body["prefix"] + "_")
    assert made.headers["location"] == f"/v1/api-keys/{body['id']}"
    listed = (await tenant.get("/v1/api-keys")).json()
    assert {k["name"] for k in listed} == {"first key", "deploy bot"}
    assert all("key" not in k for k in listed)  # the secret is shown once only
    new_headers = {"Authorization": f"Bearer {body['key']}"}
    assert (await tenant.client.get("/v1/channels", headers=new_headers)).status_code == 200

    revoked = await tenant.delete(f"/v1/api-keys/{body['id']}")
    assert revoked.status_code == 204
    assert_problem(await tenant.client.get("/v1/channels", headers=new_headers), 401)
    got = (await tenant.get(f"/v1/api-keys/{body['id']}")).json()
    assert got["revoked_at"] is not None
    assert_problem(await tenant.get("/v1/api-keys/key_nope"), 404)


async def test_key_names_are_validated(tenant):
    assert_problem(await tenant.post("/v1/api-keys", {"name": ""}), 422, "name")
    assert_problem(await tenant.post("/v1/api-keys", {}), 422, "name")


async def test_a_revoked_key_stops_at_once(api_store, tenant):
    key, _ = await api_store.api_key_by_prefix(tenant.token.rsplit("_", 1)[0])
    await Tenancy(api_store).revoke_key(None, key.id)
    assert_problem(await tenant.get("/v1/channels"), 401)
