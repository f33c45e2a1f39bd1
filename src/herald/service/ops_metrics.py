"""Metrics a process serves beside its own: who it is, and the store-wide view.

- ``herald_process_info{role,version,region} 1``: in every role, so that a dashboard can tell
  which processes of which version run where.
- ``herald_store_deliveries{state}``, ``herald_webhook_backlog``,
  ``herald_channels_needing_reauth{platform}``: read from the store at scrape time, by the
  processes that see the whole store (``serve``, ``api``, ``run``, ``dispatcher``; a worker
  sees only its platforms' jobs, and a fleet of them would read the same figures many times).

The store is read once per ``max_age_s`` whatever the number of scrapers (several
Prometheus servers, an HA pair): one query per figure, each cheap (``count ... GROUP BY`` on
an index, or on the partial indexes of the webhook backlog), and at most one round of them at
once. A read that fails keeps the last figures and counts the failure in
``herald_store_unavailable_total{task="metrics"}``: ``/metrics`` answers while the store is
away, and ``herald_store_up`` (where an engine runs) says it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from herald import __version__
from herald.domain import Platform
from herald.errors import StoreError
from herald.states import DeliveryState

__all__ = ["ProcessRole", "StoreCounts", "StoreGauges", "process_info"]

log = logging.getLogger("herald.metrics")

#: What a Herald process runs as: its command.
ProcessRole = Literal["serve", "api", "run", "dispatcher", "worker"]


def process_info(registry: CollectorRegistry, role: ProcessRole, region: str) -> None:
    """Register ``herald_process_info{role,version,region} 1`` on ``registry``."""
    info = Gauge(
        "herald_process_info",
        "1 for each Herald process: what it runs as, its version, its region.",
        ["role", "version", "region"],
        registry=registry,
    )
    info.labels(role, __version__, region).set(1)


class StoreCounts(Protocol):
    """What the store-wide gauges read (a part of :class:`herald.types.Catalog`)."""

    async def count_by_state(self) -> dict[DeliveryState, int]: ...

    async def count_webhook_backlog(self) -> int: ...

    async def count_channels_needing_reauth(self) -> dict[Platform, int]: ...


class StoreGauges(Collector):
    """The store-wide gauges, refreshed by :meth:`refresh` before each scrape is rendered.

    ``unavailable`` counts failed reads: the engine's ``herald_store_unavailable_total`` where
    one runs in the process (one family per name in a scrape), else one of its own on
    ``registry``."""

    def __init__(
        self,
        store: StoreCounts,
        registry: CollectorRegistry,
        *,
        unavailable: Counter | None = None,
        max_age_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_age_s = max_age_s
        self._clock = clock
        self._unavailable = unavailable or Counter(
            "herald_store_unavailable_total",
            "Store calls that failed transiently and were tried again, by task.",
            ["task"],
            registry=registry,
        )
        self._unavailable.labels("metrics")  # at 0 before the first failure
        self._read_at: float | None = None
        self._reading = asyncio.Lock()  # one round of reads at once: the others wait for it
        self.reads = 0  # rounds of reads made, for tests
        self._deliveries: dict[DeliveryState, int] = {}
        self._backlog = 0
        self._reauth: dict[Platform, int] = {}
        registry.register(self)

    async def refresh(self) -> None:
        """Read the store unless the figures are fresh (``max_age_s``)."""
        if self._fresh():
            return
        async with self._reading:
            if self._fresh():
                return  # read by the scrape this one waited for
            self.reads += 1
            try:
                deliveries = await self._store.count_by_state()
                backlog = await self._store.count_webhook_backlog()
                reauth = await self._store.count_channels_needing_reauth()
            except StoreError as exc:
                # The last figures stay; tried again at the next scrape, not before max_age_s
                # (a store that is away is not asked by every scraper).
                self._unavailable.labels("metrics").inc()
                log.warning("metrics.store_unavailable", extra={"error": str(exc)})
            else:
                self._deliveries, self._backlog, self._reauth = deliveries, backlog, reauth
            self._read_at = self._clock()

    def _fresh(self) -> bool:
        return self._read_at is not None and self._clock() - self._read_at < self._max_age_s

    def collect(self) -> Iterator[Metric]:
        deliveries = GaugeMetricFamily(
            "herald_store_deliveries",
            "Deliveries in the store, by state (read at scrape time).",
            labels=["state"],
        )
        for state in DeliveryState:
            deliveries.add_metric([state.value], self._deliveries.get(state, 0))
        yield deliveries
        yield GaugeMetricFamily(
            "herald_webhook_backlog",
            "Webhook events in the outbox not yet delivered nor given up (read at scrape time).",
            value=self._backlog,
        )
        reauth = GaugeMetricFamily(
            "herald_channels_needing_reauth",
            "Channels parked until their user gives new credentials (read at scrape time).",
            labels=["platform"],
        )
        for platform in Platform:
            reauth.add_metric([platform.value], self._reauth.get(platform, 0))
        yield reauth
