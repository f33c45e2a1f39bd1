"""Engine restarts against the simulator: a new engine counts what the last one sent."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from herald.config import Settings
from herald.domain import Platform, utcnow
from herald.simulator import LatencyModel, Simulator, SimulatorConfig
from herald.states import DeliveryState
from herald.stores.sqlite import SQLiteStore
from tests.integration.pipeline import open_pipeline

S = DeliveryState


async def test_two_burst_runs_share_instagram_s_rolling_day(tmp_path):
    config = SimulatorConfig.from_settings(
        Settings(),
        latency=LatencyModel(median_s=0.002, p99_s=0.01),
        seed=3,
        instagram={"publishes_per_24h": 3},
    )
    async with Simulator(config) as sim:
        pipe = await open_pipeline(sim, tmp_path, instagram={"publishes_per_24h": 3})
        try:
            account = await pipe.channel(Platform.INSTAGRAM)
            first = await pipe.schedule([account], 3)
            await pipe.run()  # herald run --burst
            await pipe.store.close()
            # A second cron run: a new process, a new engine, the same database file.
            pipe.store = SQLiteStore(pipe.store.path, synchronous="NORMAL")
            await pipe.store.open()
            second = await pipe.schedule([account], 2)
            await pipe.run()
            deliveries = await pipe.deliveries()
        finally:
            await pipe.store.close()
        assert {deliveries[i].state for i in first} == {S.PUBLISHED}
        states = Counter(deliveries[i].state for i in first + second)
        assert states == {S.PUBLISHED: 3, S.SCHEDULED: 2}
        # Deferred to when the rolling 24 h window frees a slot; nothing sent meanwhile.
        waiting = [deliveries[i] for i in second]
        assert all(d.next_attempt_at > utcnow() + timedelta(hours=23) for d in waiting)
        assert all(d.attempts == 0 for d in waiting)
        summary = sim.audit.summary()
        assert summary["posts"] == 3
        assert summary["limit_violations"] == 0
