"""Engines that die: another engine gives back their claims within seconds, not a lease.

Each engine beats in the store's registry; its claims carry its id. Engine A claims and dies
(its task is cancelled: nothing handed back, no goodbye, as under SIGKILL) with requests on
the wire and claims queued behind them; engine B, sharing the store, publishes all of them
within ``dead_after_s`` and a beat, although their leases have most of 300 s left.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from herald.domain import Platform
from herald.engine import Engine
from herald.states import DeliveryState
from herald.testing import FakeConnector, FakePlatform, StaticCredentials, channel, new_post
from herald.testing.virtual_time import running_clock
from tests.suites.engine import settings, states

S = DeliveryState
POSTS = 10


def shared_engine(store, connector: FakeConnector, cfg) -> Engine:
    """One of several engines on one store (never ``exclusive``: it recovers nothing at
    start but lapsed leases)."""
    return Engine(
        cfg,
        store,
        {connector.platform: connector},
        credentials=StaticCredentials(),
        rules={connector.platform: ()},
        exclusive=False,
        clock=running_clock(),
    )


async def kill(engine: Engine, running: asyncio.Task[None]) -> None:
    """Stop ``engine`` the way SIGKILL does: its tasks end where they are, nothing is written."""
    running.cancel()
    requests = [task for lane in engine.pool.lanes.values() for task in lane.tasks]
    for task in requests:
        task.cancel()
    await asyncio.gather(running, *requests, return_exceptions=True)


class EngineHeartbeatSuite:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def test_a_dead_engine_s_claims_are_published_by_another_within_seconds(self, store):
        world, fb = FakePlatform(), channel(Platform.FACEBOOK)
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text=f"post {i}") for i in range(POSTS)])
        cfg = settings(heartbeat_s=0.5, dead_after_s=2.0)
        assert cfg.engine.lease_s == 300.0
        cfg.facebook.concurrency = 2
        hung = FakeConnector(Platform.FACEBOOK, world, latency_s=3600.0)  # never answers
        a = shared_engine(store, hung, cfg)
        running_a = asyncio.create_task(a.run())
        await world.wait_until(lambda: hung.in_flight == 2)
        await kill(a, running_a)
        killed = running_clock().now()
        held = sorted(d.state for d in (await states(store)).values())
        assert held == [S.CLAIMED] * (POSTS - 2) + [S.PUBLISHING] * 2

        b = shared_engine(store, FakeConnector(Platform.FACEBOOK, world), cfg)
        running_b = asyncio.create_task(b.run())
        try:
            await world.wait_until(lambda: world.published() == POSTS, timeout_s=30.0)
        finally:
            b.request_stop()
            await running_b
        # A judge waits for its own clean record (dead_after_s), then up to a beat.
        assert running_clock().now() - killed < timedelta(seconds=2.0 + 0.5 + 1.5)
        got = await states(store)
        assert {d.state for d in got.values()} == {S.PUBLISHED}
        assert world.duplicates() == 0
        # The two sent when A died were looked up first (absent: A's requests never landed).
        assert [kind for kind, _ in world.calls].count("find") == 2
        assert [e.id for e in await store.list_engines()] == []  # A judged, B left
        # Every claim A held, counted where it was given back.
        recovered = b.metrics.registry.get_sample_value(
            "herald_lease_recoveries_total", {"kind": "expired_lease"}
        )
        assert recovered == POSTS
