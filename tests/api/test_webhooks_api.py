"""Webhook subscriptions: secret shown once and encrypted at rest."""

from __future__ import annotations

from typing import get_args

import pytest
from cryptography.fernet import Fernet

from herald.api.schemas.webhooks import Event
from herald.constants import WEBHOOK_EVENTS
from tests.api.conftest import assert_problem


async def test_create_list_get_delete(tenant, api_store, secret_key):
    made = await tenant.post(
        "/v1/webhooks",
        {"url": "https://hooks.acme.test/h", "events": ["delivery.failed", "delivery.published"]},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ["delivery.published", "delivery.failed"]
    assert made.headers["location"] == f"/v1/webhooks/{body['id']}"
    stored = await api_store.get_webhook_secret(body["id"])
    assert body["secret"].encode() not in stored
    assert Fernet(secret_key).decrypt(stored).decode() == body["secret"]
    listed = (await tenant.get("/v1/webhooks")).json()
    assert [w["id"] for w in listed] == [body["id"]]
    assert "secret" not in listed[0]
    got = (await tenant.get(f"/v1/webhooks/{body['id']}")).json()
    assert "secret" not in got
    assert (await tenant.delete(f"/v1/webhooks/{body['id']}")).status_code == 204
    assert (await tenant.get("/v1/webhooks")).json() == []
    assert_problem(await tenant.get(f"/v1/webhooks/{body['id']}"), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://x.test/h", "events": ["delivery.failed"]}, "url"),
        ({"url": "https://", "events": ["delivery.failed"]}, "url"),
        ({"url": "https://user:pw@x.test/h", "events": ["delivery.failed"]}, "url"),
        ({"url": "https://x.test:99999/h", "events": ["delivery.failed"]}, "url"),
        ({"url": "https://x.test/h", "events": []}, "events"),
        ({"url": "https://x.test/h", "events": ["post.liked"]}, "events[0]"),
        ({"events": ["delivery.failed"]}, "url"),
    ],
)
async def test_create_is_validated(tenant, body, field):
    assert_problem(await tenant.post("/v1/webhooks", body), 422, field)
    assert (await tenant.get("/v1/webhooks")).json() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/h",
        "http://localhost/h",  # a name: what it resolves to now is checked
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.1]/h",
        "http://[fd00::1]/h",
    ],
)
async def test_a_webhook_to_an_address_that_is_not_public_is_refused(tenant, url):
    """Herald would POST every event there: an internal service must not be one."""
    refused = await tenant.post("/v1/webhooks", {"url": url, "events": ["delivery.failed"]})
    assert_problem(refused, 422, "url")
    assert "webhook URL refused: address not allowed" in refused.text
    assert (await tenant.get("/v1/webhooks")).json() == []


def test_the_schema_offers_exactly_the_events_herald_sends():
    assert get_args(Event) == WEBHOOK_EVENTS
