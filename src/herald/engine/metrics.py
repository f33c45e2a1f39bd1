"""Prometheus metrics of one engine, on a registry of its own (no import-time globals).

Names follow Prometheus conventions: ``herald_`` prefix, base units, ``_total`` for counters.
A metric only some roles have a use for (the broker's, the limiter's) is made in every role,
so that the engine's parts need not ask, but registered only in the roles it describes: a
dispatcher shows no ``herald_limiter_up``, and an embedded engine no ``herald_broker_up``
that could only ever read 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from herald.domain import Platform
from herald.limits.rules import LimitRule, Pacing

__all__ = ["Metrics", "QuotaGauges"]

#: The role whose metrics these are (see :data:`herald.engine.Role`).
MetricsRole = Literal["all", "dispatcher", "worker"]

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_LATENESS_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86400.0)


class Metrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, *, role: MetricsRole = "all"
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Registered where they describe something (see the module's doc), else kept aside.
        broker = r if role != "all" else None
        limiter = r if role != "dispatcher" else None
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
        self.sent_lateness_seconds = Histogram(
            "herald_delivery_sent_lateness_seconds",
            "How long after its due time a delivery's publish request was put on the wire.",
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
        self.rate_limit_grants = Counter(
            "herald_rate_limit_grants_total",
            "Requests the rate limiter admitted (publishes and look-ups).",
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
        for platform in Platform:  # 0 from the start: "no outage" is a figure, not a gap
            self.outage.labels(platform.value).set(0)
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
        self.lease_recoveries = Counter(
            "herald_lease_recoveries_total",
            "Deliveries recovered after a process lost them: expired_lease (a lapsed lease or"
            " a dead engine's claims, released in the store), republished (a job the broker"
            " handed out again, taken over from a consumer that went away).",
            ["kind"],
            registry=r,
        )
        self.broker_up = Gauge(
            "herald_broker_up",
            "1 while the broker answers this process, 0 since its last call failed.",
            registry=broker,
        )
        self.broker_up.set(1)
        self.broker_errors = Counter(
            "herald_broker_errors_total",
            "Broker calls that failed, by operation: publish, consume, ack.",
            ["operation"],
            registry=broker,
        )
        self.limiter_up = Gauge(
            "herald_limiter_up",
            "1 while the rate limiter can be trusted (a shared one: reachable and rebuilt),"
            " 0 while nothing is admitted until it is rebuilt.",
            registry=limiter,
        )
        self.limiter_up.set(1)
        self.limiter_errors = Counter(
            "herald_limiter_errors_total",
            "Calls to the shared rate limiter that failed (Redis away, or its state lost).",
            registry=limiter,
        )
        # Known label values shown at 0 from the start: increase() and alerts need a series
        # before the first event, not only after it.
        for kind in ("expired_lease", "republished"):
            self.lease_recoveries.labels(kind)
        for operation in ("publish", "consume", "ack"):
            self.broker_errors.labels(operation)

    def broker_failed(self, operation: str) -> None:
        self.broker_errors.labels(operation).inc()
        self.broker_up.set(0)

    def broker_answered(self) -> None:
        self.broker_up.set(1)


#: Per (platform, rule name): the units used on that rule's busiest key (see
#: :meth:`herald.types.RateLimiter.quota_use`).
QuotaUse = Mapping[tuple[str, str], float]


class QuotaGauges(Collector):
    """``herald_quota_used`` and ``herald_quota_allowed``, per platform and rule: every rule of
    the platforms this engine publishes to, its busiest key's use as ``used`` reads it at
    scrape time (0 when none was seen). One series per rule whatever the number of channels:
    the busiest key is the one to run out first, and channel labels would make thousands."""

    def __init__(
        self, rules: Mapping[Platform, tuple[LimitRule, ...]], used: Callable[[], QuotaUse]
    ) -> None:
        self._allowed = {
            (platform.value, rule.name): float(_allowance(rule))
            for platform, platform_rules in rules.items()
            for rule in platform_rules
        }
        self._used = used

    def register(self, registry: CollectorRegistry) -> QuotaGauges:
        registry.register(self)
        return self

    def collect(self) -> Iterator[Metric]:
        labels = ["platform", "rule"]
        used = GaugeMetricFamily(
            "herald_quota_used",
            "Units used on the busiest key of a limit rule (calls, posts, units) within its"
            " window, as this process last saw it.",
            labels=labels,
        )
        allowed = GaugeMetricFamily(
            "herald_quota_allowed", "What a limit rule allows each key.", labels=labels
        )
        seen = self._used()
        for where, allowance in sorted(self._allowed.items()):
            used.add_metric(list(where), seen.get(where, 0.0))
            allowed.add_metric(list(where), allowance)
        yield used
        yield allowed


def _allowance(rule: LimitRule) -> int:
    algorithm = rule.algorithm
    return algorithm.burst if isinstance(algorithm, Pacing) else algorithm.limit
