"""Concurrency caps wider than one process, in the engine (on the in-memory caps): a request
takes its channel's, its app's and its platform's slots before it goes, waits in its lane
while they are full (woken by a release, not by polling), and frees them on every path."""

from __future__ import annotations

from collections import Counter

import pytest

from herald.domain import Platform
from herald.errors import TransientPlatformError
from herald.stores.memory import MemoryStore
from herald.testing import FakeConnector, FakePlatform, channel, new_post
from tests.suites.engine import S, drain, engine_for, settings, states

pytestmark = pytest.mark.virtual_time

FB = Platform.FACEBOOK


class CountingConnector(FakeConnector):
    """Counts the publishes in progress at once on each channel."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.on_channel: Counter[str] = Counter()
        self.most_on_channel: Counter[str] = Counter()

    async def publish(self, request):
        account = request.channel.external_id
        self.on_channel[account] += 1
        self.most_on_channel[account] = max(self.most_on_channel[account], self.on_channel[account])
        try:
            return await super().publish(request)
        finally:
            self.on_channel[account] -= 1


def capped(**caps):
    cfg = settings()
    for name, value in caps.items():
        setattr(cfg.facebook, name, value)
    return cfg


async def run_posts(per_channel, channels, cfg, **connector):
    store, world = MemoryStore(), FakePlatform()
    pages = [channel(FB) for _ in range(channels)]
    await store.add_channels(pages)
    await store.add_posts([new_post([p]) for p in pages for _ in range(per_channel)])
    conn = CountingConnector(FB, world, latency_s=1.0, **connector)
    engine = engine_for(store, {FB: conn}, cfg)
    await drain(engine, within_s=120.0)
    return engine, conn, await states(store)


async def test_channel_and_app_caps_bound_what_is_in_flight_and_are_used_whole():
    cfg = capped(channel_concurrency=2, app_concurrency=5)
    engine, conn, got = await run_posts(4, 3, cfg)
    assert {d.state for d in got.values()} == {S.PUBLISHED}
    assert set(conn.most_on_channel.values()) == {2}  # the channel cap, reached, never passed
    assert conn.max_in_flight == 5  # the app's, below the process's 8
    assert engine.caps.held == 0


async def test_a_job_waiting_for_a_slot_is_woken_by_its_release_not_by_the_lease():
    cfg = capped(channel_concurrency=1)
    _, conn, got = await run_posts(6, 1, cfg)
    assert {d.state for d in got.values()} == {S.PUBLISHED}
    assert conn.max_in_flight == 1
    # One after the other, each as the one before ends: 1 s apart, not a 10 s lease apart.
    gaps = [b - a for a, b in zip(conn.world.arrivals, conn.world.arrivals[1:], strict=False)]
    assert max(gaps) == pytest.approx(1.0)


async def test_a_cluster_cap_holds_and_failed_requests_give_their_slots_back():
    cfg = capped(cluster_concurrency=2)
    errors = {"*": [TransientPlatformError("boom", status=503) for _ in range(3)]}
    engine, conn, got = await run_posts(3, 2, cfg, script=errors)
    assert {d.state for d in got.values()} == {S.PUBLISHED}
    assert conn.max_in_flight == 2
    assert engine.caps.held == 0  # the failures freed theirs too


async def test_without_wider_caps_the_process_lane_is_the_only_cap():
    _, conn, _ = await run_posts(4, 3, settings())
    assert conn.max_in_flight == 8  # facebook's per-process concurrency
