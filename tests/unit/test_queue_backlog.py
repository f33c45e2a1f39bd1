"""The queue backlog for Prometheus (herald.queues.metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from herald.domain import Platform
from herald.queues.metrics import BACKLOG_METRIC, QueueBacklog


class Figures:
    def __init__(self, depths):
        self.figures = depths

    def depths(self):
        return self.figures


def sample(registry, platform, region):
    labels = {"platform": platform, "region": region}
    return registry.get_sample_value(BACKLOG_METRIC, labels)


def test_the_backlog_is_exported_per_platform_and_region():
    eu = Figures({(Platform.FACEBOOK, "eu"): 3, (Platform.INSTAGRAM, "eu"): 0})
    us = Figures({(Platform.FACEBOOK, "us"): 7})
    registry = CollectorRegistry()
    QueueBacklog(eu, us).register(registry)
    assert sample(registry, "facebook", "eu") == 3
    assert sample(registry, "instagram", "eu") == 0
    assert sample(registry, "facebook", "us") == 7
    assert sample(registry, "linkedin", "eu") is None  # a stream no queue has seen


def test_a_scrape_reads_the_figures_of_the_moment():
    figures = Figures({(Platform.YOUTUBE, "default"): 1})
    registry = CollectorRegistry()
    QueueBacklog(figures).register(registry)
    assert sample(registry, "youtube", "default") == 1
    figures.figures = {(Platform.YOUTUBE, "default"): 4}
    assert sample(registry, "youtube", "default") == 4
    assert b'herald_queue_backlog{platform="youtube",region="default"} 4.0' in generate_latest(
        registry
    )


def test_queues_reading_one_stream_are_not_counted_twice():
    # Each sees the whole group's backlog: the figures overlap, they do not add up.
    registry = CollectorRegistry()
    a = Figures({(Platform.LINKEDIN, "eu"): 2})
    QueueBacklog(a, Figures({(Platform.LINKEDIN, "eu"): 3})).register(registry)
    assert sample(registry, "linkedin", "eu") == 3
