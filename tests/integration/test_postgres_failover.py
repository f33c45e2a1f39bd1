"""The primary lost mid-run, the replica promoted: the engine goes on without losing a post or
sending one twice, judged by the simulator's audit.

The test's own primary and synchronous standby (tests/integration/pg_replica_rig.py): a
commit returns once the standby has it on disk, so a primary lost at any instant takes no
committed change with it. The engine's store names both servers in one multi-host URL with
``target_session_attrs=read-write``: each new connection goes to whichever accepts writes.
While the engine publishes, the primary is stopped at once (``pg_ctl stop -m immediate``: no
shutdown checkpoint, sessions cut as by a crash). The engine stops claiming (it reports not
ready), keeps the outcomes of what it holds until the store answers again, and holds back
nothing it could send twice; the standby is promoted (``pg_ctl promote``), the engine's next
connections reach it, and every post is held by its platform exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from herald.bootstrap import running_engine
from herald.domain import Platform
from herald.simulator import LatencyModel, Simulator
from herald.stores.postgres import PostgresStore
from herald.testing import eventually
from tests.integration.pg_replica_rig import replica_pair
from tests.integration.test_pipeline import sim_config
from tests.integration.test_postgres_pipeline import assert_each_published_once, pg_pipeline

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PER_CHANNEL = 60
#: How long the database is away before the standby is promoted (an operator's reaction, or
#: a failover manager's timeout): the engine holds its work all that time.
OUTAGE_S = 3.0

#: Claims made just before the primary went (committed on the standby, their answer lost)
#: wait for their lease to run out: a short one keeps the test short.
ENGINE = {
    "lease_s": 10.0,
    "hold_s": 4.0,
    "store_backoff_cap_s": 0.5,
    "heartbeat_s": 1.0,
    "dead_after_s": 10.0,
}


async def test_the_engine_continues_on_the_promoted_replica(tmp_path, caplog, capsys):
    # Requests slow enough that the engine is mid-run when the primary goes.
    config = sim_config(latency=LatencyModel(median_s=0.03, p99_s=0.08))
    with replica_pair() as pair:
        await pair.make_synchronous()
        async with Simulator(config) as sim:
            store = PostgresStore(pair.failover_url, pool_size=4)
            await store.open()
            try:
                pipe = pg_pipeline(sim, tmp_path, store, engine=ENGINE, facebook={"concurrency": 2})
                channels = [await pipe.channel(p) for p in (Platform.FACEBOOK, Platform.LINKEDIN)]
                for channel in channels:
                    await pipe.schedule([channel], PER_CHANNEL)
                total = PER_CHANNEL * len(channels)
                with caplog.at_level(logging.WARNING, logger="herald.engine"):
                    async with running_engine(pipe.settings, store) as engine:
                        running = asyncio.create_task(engine.run())
                        try:
                            await eventually(
                                lambda: sim.audit.summary()["posts"] >= total // 3, within_s=30
                            )
                            lost_at = time.monotonic()
                            pair.stop(pair.primary, "immediate")
                            # It stops claiming: not ready while the store does not answer.
                            await eventually(lambda: not engine.ready, within_s=10)
                            stalled = sim.audit.summary()["posts"]
                            await asyncio.sleep(OUTAGE_S)  # the scenario: nothing to wait for
                            assert not running.done(), "the engine stopped"
                            pair.promote()
                            promoted_at = time.monotonic()
                            await eventually(
                                lambda: sim.audit.summary()["posts"] == total, within_s=45
                            )
                            await eventually(lambda: engine.ready, within_s=10)
                            back_at = time.monotonic()
                        finally:
                            engine.request_stop()
                            await running  # raises if the engine stopped on an error
                assert stalled < total, "the primary went after the run, not during it"
                assert_each_published_once(sim, await pipe.deliveries(), channels, posts=total)
                logged = [r.msg for r in caplog.records if str(r.msg).startswith("engine.store_")]
                assert "engine.store_unavailable" in logged
                with capsys.disabled():
                    print(
                        f"\nfailover: {total} posts, primary lost after {stalled}; promoted "
                        f"{promoted_at - lost_at:.1f} s after the loss, all published "
                        f"{back_at - promoted_at:.1f} s after the promotion; "
                        f"{sim.audit.summary()['duplicates']} duplicates"
                    )
            finally:
                await store.close()
