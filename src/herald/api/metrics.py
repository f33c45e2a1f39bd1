"""What ``/metrics`` shows: API requests and latency, the store-wide gauges
(:mod:`herald.service.ops_metrics`), and the engine's own metrics when it runs in this
process. Prometheus text format; names follow Prometheus conventions (``herald_`` prefix,
base units, ``_total`` counters)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ApiMetrics", "MetricsMiddleware", "render"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The API's metrics, on a registry of their own (no import-time globals)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "herald_api_requests_total",
            "API requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "herald_api_request_duration_seconds",
            "Time from request to the end of the answer, by method and route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


class MetricsMiddleware:
    """Counts every HTTP request by its route *template* (``/v1/posts/{post_id}``), so ids
    never become label values."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.observe(method, route, status, time.perf_counter() - started)


def render(*registries: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of every registry, one after the other."""
    return b"".join(generate_latest(registry) for registry in registries)
