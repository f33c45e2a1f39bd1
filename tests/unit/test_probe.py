"""`herald run`'s probe: /healthz, /readyz and /metrics on a port of its own, over loopback."""

from __future__ import annotations

import aiohttp

from herald.engine.metrics import Metrics
from herald.probe import serving_probe


async def test_the_probe_reports_health_readiness_and_metrics():
    ready = [False]
    metrics = Metrics()
    metrics.claimed.inc(7)
    async with (
        serving_probe(lambda: ready[0], metrics.registry, host="127.0.0.1", port=0) as port,
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
    ):
        async with http.get("/healthz") as answer:
            assert (answer.status, await answer.json()) == (200, {"status": "ok"})
        async with http.get("/readyz") as answer:
            assert answer.status == 503
            assert answer.content_type == "application/problem+json"
            assert (await answer.json(content_type=None))["status"] == 503
        ready[0] = True
        async with http.get("/readyz") as answer:
            assert (answer.status, await answer.json()) == (200, {"status": "ready"})
        async with http.get("/metrics") as answer:
            assert answer.headers["Content-Type"].startswith("text/plain")
            assert "herald_claimed_deliveries_total 7.0" in await answer.text()
