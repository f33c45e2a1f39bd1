"""Database connections dropped under a running engine, on PostgreSQL, judged by the simulator.

``pg_terminate_backend`` from another session ends the engine's connections (its pool's and
its LISTEN connection) again and again while it publishes, as a failover or an operator
would: the engine keeps running, says it is not ready while its calls fail and ready again
once they answer, and every post is held by its platform exactly once.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest

from herald.bootstrap import running_engine
from herald.domain import Platform
from herald.simulator import LatencyModel, Simulator
from herald.stores.postgres import PostgresStore
from herald.testing import eventually
from tests.conftest import PG_URL
from tests.integration.test_pipeline import sim_config
from tests.integration.test_postgres_pipeline import assert_each_published_once, pg_pipeline

pytestmark = pytest.mark.postgres

PER_CHANNEL = 60
TERMINATIONS = 12

TERMINATE = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = $1 AND pid <> pg_backend_pid()
"""


@pytest.fixture
async def sim():
    # Requests slow enough that the engine is still publishing through every termination.
    config = sim_config(latency=LatencyModel(median_s=0.03, p99_s=0.08))
    async with Simulator(config) as simulator:
        yield simulator


async def test_terminated_connections_do_not_stop_the_engine(sim, tmp_path, pg_schema, caplog):
    name = f"herald-test-{pg_schema}"[:63]  # this test's sessions only, not its neighbours'
    store = PostgresStore(PG_URL, schema=pg_schema, pool_size=4, application_name=name)
    await store.open()
    admin = await asyncpg.connect(PG_URL)
    try:
        pipe = pg_pipeline(sim, tmp_path, store, facebook={"concurrency": 2})
        channels = [await pipe.channel(p) for p in (Platform.FACEBOOK, Platform.LINKEDIN)]
        for channel in channels:
            await pipe.schedule([channel], PER_CHANNEL)
        total = PER_CHANNEL * len(channels)
        killed = 0
        with caplog.at_level(logging.WARNING, logger="herald.engine"):
            async with running_engine(pipe.settings, store) as engine:
                running = asyncio.create_task(engine.run())
                try:
                    for i in range(1, TERMINATIONS + 1):
                        # Spread over the run: one termination every few posts published.
                        step = i * total // (TERMINATIONS + 2)
                        await eventually(
                            lambda s=step: sim.audit.summary()["posts"] >= s, within_s=60
                        )
                        killed += await admin.fetchval(TERMINATE, name)
                        assert not running.done(), "the engine stopped"
                    await eventually(lambda: sim.audit.summary()["posts"] == total, within_s=60)
                    await eventually(lambda: engine.ready, within_s=10)
                finally:
                    engine.request_stop()
                    await running  # raises if the engine stopped on an error
        assert killed >= TERMINATIONS
        assert_each_published_once(sim, await pipe.deliveries(), channels, posts=total)
        logged = [r.msg for r in caplog.records if str(r.msg).startswith("engine.store_")]
        # Not ready while its calls failed, ready again once they answered: each time.
        assert logged, "no termination was noticed"
        assert logged == ["engine.store_unavailable", "engine.store_back"] * (len(logged) // 2)
    finally:
        await admin.close()
        await store.close()
