"""Every error is problem+json, nothing leaks from a 500; health, readiness and metrics."""

from __future__ import annotations

import httpx
import pytest

from herald.api import create_app
from herald.config import Settings
from herald.domain import Platform
from herald.engine.metrics import Metrics
from herald.errors import ConfigError, StoreError
from herald.platforms.rules import VALIDATORS
from tests.api.conftest import METRICS_AUTH, assert_problem, imported


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("delete", "/v1/posts", "GET, POST"),  # a route per method behind one path
        ("put", "/v1/channels/ch_x", "DELETE, GET, PATCH"),
        ("put", "/v1/posts/import", "GET, POST"),  # /v1/posts/{post_id} matches it too
    ],
)
async def test_a_405_lists_every_method_the_path_serves(tenant, method, path, allowed):
    response = await tenant.client.request(method.upper(), path, headers=tenant.headers)
    assert_problem(response, 405)
    assert response.headers["allow"] == allowed


async def test_a_query_parameter_given_twice_is_refused_not_overwritten(tenant):
    """status=failed&status=scheduled must not quietly mean "scheduled"."""
    params = [("status", "failed"), ("status", "scheduled")]
    assert_problem(
        await tenant.client.get("/v1/posts", params=params, headers=tenant.headers), 422, "status"
    )
    params = [("limit", "5"), ("limit", "500")]
    assert_problem(
        await tenant.client.get("/v1/posts", params=params, headers=tenant.headers), 422, "limit"
    )
    assert (await tenant.get("/v1/posts", params={"status": "failed"})).status_code == 200


async def test_unknown_route_wrong_method_and_media_type(client, tenant):
    assert_problem(await client.get("/nope"), 404)
    assert_problem(await tenant.client.delete("/v1/posts", headers=tenant.headers), 405)
    response = await tenant.client.post(
        "/v1/posts", headers={**tenant.headers, "content-type": "text/plain"}, content=b"{}"
    )
    assert_problem(response, 415)
    response = await tenant.client.post("/v1/posts", headers=tenant.headers, content=b"{}")
    assert_problem(response, 415)  # no content type at all


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (b'"text"', "body"),
        (b"{}", "channel_ids"),
        (b'{"channel_ids": "ch_1"}', "channel_ids"),
        (b'{"channel_ids": ["bad id!"], "content": {}}', "channel_ids[0]"),
    ],
)
async def test_request_validation_names_the_field(tenant, content, field):
    response = await tenant.client.post(
        "/v1/posts",
        headers={**tenant.headers, "content-type": "application/json"},
        content=content,
    )
    assert_problem(response, 422, field)


async def test_bodies_over_the_limit_are_refused_even_when_chunked(tenant, app):
    limit = app.state.services.settings.api.max_body_bytes
    big = b'{"x": "' + b"a" * limit + b'"}'
    headers = {**tenant.headers, "content-type": "application/json"}
    assert_problem(await tenant.client.post("/v1/posts", headers=headers, content=big), 413)

    async def chunks():
        for _ in range(4):
            yield big[: limit // 2]

    response = await tenant.client.post("/v1/posts", headers=headers, content=chunks())
    assert_problem(response, 413)


async def test_an_unexpected_error_is_a_500_with_no_details(settings, api_store):
    app = create_app(settings, api_store, validators=VALIDATORS)

    async def boom() -> None:
        raise RuntimeError("secret internals: token=abc")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    body = assert_problem(response, 500)
    assert "secret" not in response.text
    assert body["detail"] == "an unexpected error occurred"


async def test_a_failing_store_is_a_503(settings, api_store, tenant, monkeypatch):
    async def broken(*args, **kwargs):
        raise StoreError("sqlite: disk I/O error at /var/lib/herald.db")

    monkeypatch.setattr(api_store, "list_channels", broken)
    response = await tenant.get("/v1/channels")
    body = assert_problem(response, 503)
    assert "/var/lib" not in response.text
    assert body["detail"] == "the store is unavailable; try again shortly"


def test_the_api_refuses_to_start_without_a_secret_key(api_store):
    with pytest.raises(ConfigError, match="HERALD_SECRET_KEYS"):
        create_app(Settings(), api_store, validators=VALIDATORS)


def test_the_api_refuses_to_start_without_every_platforms_content_rules(settings, api_store):
    some = {p: v for p, v in VALIDATORS.items() if p is not Platform.YOUTUBE}
    with pytest.raises(ConfigError, match="youtube"):
        create_app(settings, api_store, validators=some)


async def test_health_and_readiness(client, api_store, monkeypatch):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}

    async def broken(*args, **kwargs):
        raise StoreError("down")

    monkeypatch.setattr(api_store, "get_workspace", broken)
    assert_problem(await client.get("/readyz"), 503)


async def test_readiness_follows_the_engine_in_the_process(settings, api_store):
    ready = [False]
    app = create_app(settings, api_store, validators=VALIDATORS, engine_ready=lambda: ready[0])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        # Starting, stopping, or its store away: not ready, though the store answers the API.
        problem = assert_problem(await c.get("/readyz"), 503)
        assert "engine" in problem["detail"]
        assert (await c.get("/healthz")).status_code == 200
        ready[0] = True
        assert (await c.get("/readyz")).json() == {"status": "ready"}


async def test_metrics_are_not_public(client, tenant, settings, api_store):
    """Only for whoever holds the metrics token (a tenant's API key is not it), and off on
    the API port without one."""
    assert_problem(await client.get("/metrics"), 401)
    assert_problem(await client.get("/metrics", headers={"Authorization": "Bearer nope"}), 401)
    assert_problem(await client.get("/metrics", headers=tenant.headers), 401)
    answer = await client.get("/metrics", headers=METRICS_AUTH)
    assert answer.status_code == 200
    assert "herald_store_deliveries" in answer.text
    open_settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"metrics_token": None})}
    )
    app = create_app(open_settings, api_store, validators=VALIDATORS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert_problem(await c.get("/metrics", headers=METRICS_AUTH), 404)


async def test_metrics(client, tenant, settings, api_store):
    channel = await tenant.channel()
    await tenant.post_on([channel])
    await tenant.get(f"/v1/posts/{'post_x'}")
    text = (await client.get("/metrics", headers=METRICS_AUTH)).text
    assert 'herald_store_deliveries{state="scheduled"} 1.0' in text
    assert 'herald_store_deliveries{state="published"} 0.0' in text
    assert 'herald_api_requests_total{method="POST",route="/v1/posts",status="201"} 1.0' in text
    assert 'route="/v1/posts/{post_id}",status="404"' in text  # templates, never ids
    assert "post_x" not in text
    assert "herald_api_request_duration_seconds_bucket" in text

    engine_metrics = Metrics()
    engine_metrics.deliveries.labels("facebook", "published").inc(3)
    app = create_app(
        settings,
        api_store,
        validators=VALIDATORS,
        engine_registry=engine_metrics.registry,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=METRICS_AUTH
    ) as c:
        merged = (await c.get("/metrics")).text
    assert 'herald_deliveries_total{outcome="published",platform="facebook"} 3.0' in merged
    assert "herald_store_deliveries" in merged


async def test_openapi_documents_problems_and_examples(client):
    schema = (await client.get("/openapi.json")).json()
    assert "Problem" in schema["components"]["schemas"]
    create = schema["paths"]["/v1/posts"]["post"]
    assert "application/problem+json" in create["responses"]["422"]["content"]
    assert schema["components"]["schemas"]["PostCreate"]["examples"]
    assert "text/csv" in schema["paths"]["/v1/posts/import"]["post"]["requestBody"]["content"]


async def test_unknown_query_parameters_are_refused(tenant):
    problem = assert_problem(await tenant.get("/v1/posts", params={"stauts": "failed"}), 422)
    assert problem["field"] == "stauts"
    assert_problem(await tenant.get("/v1/channels", params={"page": "2"}), 422, "page")
    assert (await tenant.get("/v1/posts", params={"status": "failed"})).status_code == 200


async def test_text_no_database_can_hold_is_refused_naming_the_field(tenant, app, api_store):
    channel = await tenant.channel()
    body = {"channel_ids": [channel["id"]], "content": {"text": "nul \x00 inside"}}
    problem = assert_problem(await tenant.post("/v1/posts", body), 422)
    assert "content.text" in str(problem)
    renamed = await tenant.patch(f"/v1/channels/{channel['id']}", {"name": "a\x00b"})
    assert_problem(renamed, 422)
    csv = "channel_ids,text\n" + f"{channel['id']},fine\n" + f"{channel['id']},bad \x00 row\n"
    job = await imported(tenant, app, csv)
    assert job["state"] == "failed"
    assert job["errors"][0]["line"] == 3
    assert (await api_store.count_by_state()) == {}


@pytest.mark.parametrize("path", ["/v1/posts/abc%00", "/v1/deliveries/x%00", "/v1/channels/a%20b"])
async def test_ids_of_the_wrong_shape_are_refused(tenant, path):
    assert_problem(await tenant.get(path), 422)
    assert_problem(await tenant.get("/v1/posts", params={"channel_id": "a\x00b"}), 422)
