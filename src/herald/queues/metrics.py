"""The queue backlog for Prometheus: jobs waiting per platform and region.

``herald_queue_backlog{platform="facebook",region="eu"}`` is the figure an autoscaler reads
to size the workers of one platform and region. It is collected from each queue's last known
figures (:meth:`RedisStreamQueue.depths`), so a scrape makes no round trip to Redis. The
engine's own ``herald_queue_depth`` (no labels) stays what it was: the jobs one engine's
in-process queue holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from herald.domain import Platform

__all__ = ["BACKLOG_METRIC", "Backlogged", "QueueBacklog"]

BACKLOG_METRIC = "herald_queue_backlog"


class Backlogged(Protocol):
    def depths(self) -> Mapping[tuple[Platform, str], int]:
        """Jobs waiting per (platform, region), as last seen."""


class QueueBacklog(Collector):
    """Collects the backlog of ``queues``. Queues that read one stream see the same backlog
    (a figure of the whole group), so the largest of their figures is exported, not a sum."""

    def __init__(self, *queues: Backlogged) -> None:
        self._queues = queues

    def register(self, registry: CollectorRegistry) -> QueueBacklog:
        registry.register(self)
        return self

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            BACKLOG_METRIC,
            "Jobs in the shared queue no worker has read yet, by platform and region.",
            labels=["platform", "region"],
        )
        totals: dict[tuple[Platform, str], int] = {}
        for queue in self._queues:
            for where, count in queue.depths().items():
                totals[where] = max(totals.get(where, 0), count)
        for (platform, region), count in sorted(totals.items()):
            family.add_metric([platform.value, region], count)
        yield family
