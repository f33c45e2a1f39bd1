"""Prometheus metrics of one engine, on a registry of its own (no import-time globals).

Names follow Prometheus conventions: ``herald_`` prefix, base units, ``_total`` for counters.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        by_platform: dict[str, Any] = {"labelnames": ["platform"], "registry": r}
        self.deliveries = Counter(
            "herald_deliveries_total",
            "Delivery steps finished, by platform and outcome.",
            ["platform", "outcome"],
            registry=r,
        )
        self.publish_seconds = Histogram(
            "herald_publish_duration_seconds",
            "Time a publish took at the platform, request sent to answer.",
            ["platform"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lateness_seconds = Histogram(
            "herald_delivery_lateness_seconds",
            "How long after its due time a delivery was published.",
            ["platform"],
            buckets=_LATENESS_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "herald_queue_depth", "Claimed deliveries waiting for a worker.", registry=r
        )
        self.in_flight = Gauge(
            "herald_in_flight_deliveries", "Claimed deliveries held by this engine.", registry=r
        )
        self.rate_limit_waits = Counter(
            "herald_rate_limit_waits_total",
            "Deliveries made to wait by a rate limit or a platform pause.",
            **by_platform,
        )
        self.retries = Counter(
            "herald_retries_total", "Retries scheduled after transient errors.", **by_platform
        )
        self.not_sent = Counter(
            "herald_requests_not_sent_total",
            "Requests that never reached the platform (connection refused, DNS, TLS...).",
            **by_platform,
        )
        self.outage = Gauge(
            "herald_platform_outage",
            "1 while every request to the platform is paused for an outage, else 0.",
            **by_platform,
        )
        self.version_retires_in_days = Gauge(
            "herald_platform_version_retires_in_days",
            "Days until the platform API version this engine speaks retires (below 0: retired).",
            ["platform", "version"],
            registry=r,
        )
        self.version_warnings = Counter(
            "herald_platform_version_warnings_total",
            "Warnings given of a platform API version this engine speaks"
            " (platform.version_retiring), by reason: retiring, retired, upgraded (answered"
            " from another version), refused.",
            ["platform", "version", "reason"],
            registry=r,
        )
        self.claimed = Counter(
            "herald_claimed_deliveries_total", "Deliveries claimed by the dispatcher.", registry=r
        )
        self.store_up = Gauge(
            "herald_store_up",
            "1 while the store answers this engine, 0 while it is away.",
            registry=r,
        )
        self.store_up.set(1)
        self.store_unavailable = Counter(
            "herald_store_unavailable_total",
            "Store calls that failed transiently and were tried again, by engine task.",
            ["task"],
            registry=r,
        )
