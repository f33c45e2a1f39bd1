"""The probe of ``herald run``: ``/healthz``, ``/readyz`` and ``/metrics`` on a port of its own.

``herald serve`` answers these on its API; ``herald run`` has no API, so orchestrators
(Kubernetes liveness and readiness probes, Prometheus) find them here when
``engine.probe_port`` is set (``--probe-port``, ``HERALD_ENGINE__PROBE_PORT``):

- ``/healthz``: 200 while the process serves;
- ``/readyz``: 200 while the engine runs and its store answers, else 503 (problem+json), as
  ``herald serve``'s ``/readyz`` does;
- ``/metrics``: the engine's Prometheus registry, after ``before_scrape`` (the store-wide
  gauges' read, in the processes that export them: :mod:`herald.service.ops_metrics`).

Served with aiohttp's own server rather than a second FastAPI application: aiohttp is loaded
already (the connectors use it), three fixed routes need neither validation nor OpenAPI, and
it starts in milliseconds. It is given only a readiness callable and a registry, as the API is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from herald.types import Readiness

__all__ = ["serving_probe"]

log = logging.getLogger("herald.probe")

_NOT_READY = {
    "type": "urn:herald:problem:store-unavailable",
    "title": "Service Unavailable",
    "status": 503,
    "detail": "the engine is not ready: starting, stopping, or store away",
}


#: Brings gauges read at scrape time up to date before ``/metrics`` renders them.
BeforeScrape = Callable[[], Awaitable[None]]


def _application(
    ready: Readiness, registry: CollectorRegistry, before_scrape: BeforeScrape | None
) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        if ready():
            return web.json_response({"status": "ready"})
        return web.Response(
            status=503, text=json.dumps(_NOT_READY), content_type="application/problem+json"
        )

    async def metrics(_request: web.Request) -> web.Response:
        if before_scrape is not None:
            await before_scrape()
        headers = {"Content-Type": CONTENT_TYPE_LATEST}  # with its charset: not content_type=
        return web.Response(body=generate_latest(registry), headers=headers)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


@asynccontextmanager
async def serving_probe(
    ready: Readiness,
    registry: CollectorRegistry,
    *,
    host: str,
    port: int,
    before_scrape: BeforeScrape | None = None,
) -> AsyncIterator[int]:
    """Serve the probe on ``host``:``port`` (0: a free port) until the block ends; yield the
    port it listens on."""
    app = _application(ready, registry, before_scrape)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        log.info("probe.listening", extra={"host": host, "port": bound})
        yield bound
    finally:
        await runner.cleanup()
