"""``/healthz``, ``/readyz``, ``/metrics``: for load balancers and Prometheus (no API key).

``/metrics`` is not public: the API port faces tenants, and a scrape walks the store (its
delivery counts). It answers only with ``api.metrics_token`` as a bearer token (Prometheus's
``authorization`` setting), and not at all while no token is configured. Its figures carry no
tenant's data: counts by state, and requests by route template, never by id."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from herald.api.deps import ServicesDep
from herald.api.metrics import render
from herald.api.problems import problem_response, responses
from herald.domain import DEFAULT_WORKSPACE
from herald.errors import HeraldError, NotFound, Unauthenticated

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


@router.get("/healthz", summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    responses=responses(503),
    summary="The store answers, and the engine in this process (if any) can work",
)
async def readyz(services: ServicesDep) -> Response:
    if services.engine_ready is not None and not services.engine_ready():
        return problem_response(503, "the engine is not ready: starting, stopping, or store away")
    try:
        await asyncio.wait_for(
            services.store.get_workspace(DEFAULT_WORKSPACE),
            services.settings.api.readiness_timeout_s,
        )
    except NotFound:
        pass  # the store answered
    except (HeraldError, TimeoutError):
        return problem_response(503, "the store does not answer")
    return Response(Health(status="ready").model_dump_json(), media_type="application/json")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        **responses(401, 404),
    },
    summary="Prometheus metrics (with api.metrics_token): API, store, and an in-process engine",
)
async def metrics(services: ServicesDep, request: Request) -> Response:
    token = services.settings.api.metrics_token
    if token is None:
        raise StarletteHTTPException(404, "no such route")
    given = request.headers.get("authorization", "")
    expected = f"Bearer {token.get_secret_value()}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthenticated("/metrics needs the metrics token (api.metrics_token)")
    await services.store_gauges.refresh()
    registries = [services.metrics.registry]
    if services.engine_registry is not None:
        registries.append(services.engine_registry)
    return Response(render(*registries), media_type=CONTENT_TYPE_LATEST)
