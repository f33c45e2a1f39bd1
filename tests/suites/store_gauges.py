"""The store-wide gauges of ``/metrics`` (``herald_store_deliveries``, ``herald_webhook_backlog``,
``herald_channels_needing_reauth``) on every store: read from it at scrape time, once per
``max_age_s`` however many scrape, and kept as they were when a read fails."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from herald.domain import DEFAULT_WORKSPACE, ChannelStatus, Platform, Webhook, new_id
from herald.service.ops_metrics import StoreGauges
from herald.testing import channel, new_post
from tests.suites.flaky import FlakyStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def parked_with_an_event(store) -> None:
    """A LinkedIn channel parked, recording a ``channel.needs_reauth`` event for a webhook."""
    event = "channel.needs_reauth"
    hook = Webhook(new_id("wh"), DEFAULT_WORKSPACE, "https://hooks.example/h", (event,))
    await store.add_webhook(hook, b"s")
    li = channel(Platform.LINKEDIN)
    await store.add_channels([li])
    await store.set_channel_status(li.id, ChannelStatus.NEEDS_REAUTH, event=event)


class StoreGaugesSuite:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def test_the_gauges_read_the_store_once_per_max_age(self, store):
        fb = channel(Platform.FACEBOOK)
        await store.add_channels([fb])
        await store.add_posts([new_post([fb]) for _ in range(2)])
        registry, clock = CollectorRegistry(), Clock()
        gauges = StoreGauges(store, registry, max_age_s=5.0, clock=clock)
        # Several scrapers at once: one round of reads.
        await asyncio.gather(*(gauges.refresh() for _ in range(5)))
        assert gauges.reads == 1
        assert sample(registry, "herald_store_deliveries", state="scheduled") == 2.0
        assert sample(registry, "herald_store_deliveries", state="published") == 0.0
        assert sample(registry, "herald_webhook_backlog") == 0.0
        assert sample(registry, "herald_channels_needing_reauth", platform="linkedin") == 0.0

        await parked_with_an_event(store)
        clock.now = 4.0
        await gauges.refresh()  # fresh still: the store is not asked
        assert (gauges.reads, sample(registry, "herald_webhook_backlog")) == (1, 0.0)
        clock.now = 5.5
        await gauges.refresh()
        assert gauges.reads == 2
        assert sample(registry, "herald_webhook_backlog") == 1.0
        assert sample(registry, "herald_channels_needing_reauth", platform="linkedin") == 1.0
        assert sample(registry, "herald_channels_needing_reauth", platform="facebook") == 0.0

    async def test_a_failed_read_keeps_the_last_figures_and_is_counted(self, store):
        fb = channel(Platform.FACEBOOK)
        await store.add_channels([fb])
        await store.add_posts([new_post([fb])])
        flaky, registry, clock = FlakyStore(store), CollectorRegistry(), Clock()
        gauges = StoreGauges(flaky, registry, max_age_s=1.0, clock=clock)
        await gauges.refresh()
        flaky.away = True
        await parked_with_an_event(store)
        clock.now = 2.0
        await gauges.refresh()  # no error: /metrics still answers
        assert sample(registry, "herald_store_unavailable_total", task="metrics") == 1.0
        assert sample(registry, "herald_store_deliveries", state="scheduled") == 1.0
        assert sample(registry, "herald_webhook_backlog") == 0.0
        flaky.away = False
        clock.now = 4.0
        await gauges.refresh()
        assert sample(registry, "herald_webhook_backlog") == 1.0
        assert sample(registry, "herald_store_unavailable_total", task="metrics") == 1.0
