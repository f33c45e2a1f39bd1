"""The API against a SQLite store in tmp_path, driven through httpx's ASGI transport.

The app gets the connectors' content rules, as every process that serves it does, and a
``notify`` that records what an engine in the process would have been told (``notified``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from herald.api import create_app
from herald.config import Settings
from herald.domain import Platform, new_id, utcnow
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.stores.sqlite import SQLiteStore

CREDENTIALS: dict[Platform, dict[str, str]] = {
    Platform.FACEBOOK: {"access_token": "fb-token"},
    Platform.INSTAGRAM: {"access_token": "ig-token"},
    Platform.LINKEDIN: {"access_token": "li-token"},
    Platform.YOUTUBE: {
        "access_token": "yt-token",
        "refresh_token": "yt-refresh",
        "client_id": "client",
        "client_secret": "client-secret",
    },
}
IMAGE = {"url": "https://cdn.example/a.jpg", "kind": "image"}
VIDEO = {"url": "https://cdn.example/v.mp4", "kind": "video"}


def later(**delta: float) -> str:
    return (utcnow() + timedelta(**(delta or {"hours": 1}))).isoformat()


@dataclass
class Tenant:
    workspace_id: str
    token: str
    client: httpx.AsyncClient

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self.headers, **kw)

    async def post(self, url: str, body: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(url, headers=self.headers, json=body, **kw)

    async def patch(self, url: str, body: Any) -> httpx.Response:
        return await self.client.patch(url, headers=self.headers, json=body)

    async def put(self, url: str, body: Any) -> httpx.Response:
        return await self.client.put(url, headers=self.headers, json=body)

    async def delete(self, url: str) -> httpx.Response:
        return await self.client.delete(url, headers=self.headers)

    async def channel(self, platform: Platform = Platform.FACEBOOK, **fields: Any) -> dict:
        body = {
            "platform": platform.value,
            "external_id": fields.pop("external_id", new_id(platform.value)),
            "name": fields.pop("name", f"My {platform.value}"),
            "timezone": fields.pop("timezone", "Europe/Paris"),
            "credentials": fields.pop("credentials", CREDENTIALS[platform]),
            **fields,
        }
        response = await self.post("/v1/channels", body)
        assert response.status_code == 201, response.text
        return response.json()

    async def post_on(self, channels: list[dict], **fields: Any) -> dict:
        body = {
            "channel_ids": [c["id"] for c in channels],
            "content": fields.pop("content", {"text": "Hello"}),
            **fields,
        }
        if not any(k in body for k in ("scheduled_at", "local_time", "next_free_slot")):
            body["scheduled_at"] = later()
        response = await self.post("/v1/posts", body)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture
def secret_key() -> str:
    return Fernet.generate_key().decode()


#: The tests' app serves /metrics to this bearer token only.
METRICS_TOKEN = "scrape-me"
METRICS_AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


@pytest.fixture
def settings(secret_key) -> Settings:
    return Settings(
        secret_keys=[secret_key],
        engine={"sqlite_synchronous": "NORMAL"},
        # No per-key rate limit here (tests/api/test_rate_limits.py has its own): the
        # schema's fuzzing sends hundreds of requests a second with one key.
        api={"metrics_token": METRICS_TOKEN, "key_requests_per_s": 0},
    )


@pytest.fixture
async def api_store(tmp_path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "api.db", synchronous="NORMAL")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def notified() -> list[datetime | None]:
    """Every due time the app told the engine about, in order."""
    return []


@pytest.fixture
async def app(settings, api_store, notified):
    app = create_app(settings, api_store, validators=VALIDATORS, notify=notified.append)
    yield app
    await app.state.services.imports.runner.close()  # before the store closes


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
        yield c


async def _tenant(store, client, name: str) -> Tenant:
    issued = await Tenancy(store).create_workspace(name)
    return Tenant(issued.key.workspace_id, issued.token, client)


@pytest.fixture
async def tenant(api_store, client) -> Tenant:
    return await _tenant(api_store, client, "Acme")


@pytest.fixture
async def other(api_store, client) -> Tenant:
    return await _tenant(api_store, client, "Rival")


async def imported(
    tenant: Tenant, app: Any, data: str | bytes, content_type: str = "text/csv"
) -> dict:
    """Send a CSV file to ``POST /v1/posts/import`` (202, the job) and wait until the job is
    done (the app's import runner finished it); the job as ``GET /v1/imports/{id}`` shows it."""
    response = await tenant.client.post(
        "/v1/posts/import",
        headers={**tenant.headers, "content-type": content_type},
        content=data.encode() if isinstance(data, str) else data,
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/imports/{job['id']}"
    await app.state.services.imports.runner.join(job["id"])
    done = await tenant.get(f"/v1/imports/{job['id']}")
    assert done.status_code == 200, done.text
    assert done.json()["state"] in ("succeeded", "failed"), done.text
    return dict(done.json())


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    if field is not None:
        fields = [body.get("field")] + [e.get("field") for e in body.get("errors", [])]
        assert field in fields, body
    return body
