"""The engine end to end on PostgreSQL: one engine, then two at once on the same schema.

Same simulator and pipeline as tests/integration/test_pipeline.py, with the PostgreSQL store
in place of SQLite. The simulator's audit is the judge: every post is held by its platform
exactly once, whichever engine sent it.
"""

from __future__ import annotations

import asyncio

import pytest

from herald.bootstrap import running_engine
from herald.domain import Platform
from herald.service.credentials import SecretsFile
from herald.simulator import FaultConfig, Simulator
from herald.states import DeliveryState
from herald.testing import eventually
from tests.integration.pipeline import Pipeline, pipeline_settings
from tests.integration.test_pipeline import sim_config

pytestmark = pytest.mark.postgres

S = DeliveryState


@pytest.fixture
async def sim():
    async with Simulator(sim_config()) as simulator:
        yield simulator


def pg_pipeline(sim, tmp_path, store, **sections) -> Pipeline:
    settings = pipeline_settings(sim, **sections)
    # Pipeline is typed for SQLite but only uses the Store protocol.
    return Pipeline(sim, settings, store, SecretsFile(tmp_path / "secrets.json"))


def assert_each_published_once(sim, deliveries, channels, *, posts):
    assert {d.state for d in deliveries.values()} == {S.PUBLISHED}
    summary = sim.audit.summary()
    assert summary["posts"] == posts  # none lost
    assert summary["duplicates"] == 0  # none twice
    assert summary["duplicates_refused"] == 0  # none resent (a refused resend is luck)
    assert summary["limit_violations"] == 0
    held = {(p.platform, p.account, p.post_id) for p in sim.audit.posts()}
    by_id = {c.id: c for c in channels}
    for d in deliveries.values():
        channel = by_id[d.channel_id]
        assert (channel.platform, channel.external_id, d.external_id) in held


async def test_every_platform_publishes_once(sim, tmp_path, pg_stores):
    pipe = pg_pipeline(sim, tmp_path, await pg_stores.open())
    channels = [await pipe.channel(p) for p in Platform for _ in range(2)]
    for channel in channels:
        await pipe.schedule([channel], 5)
    await pipe.run()
    assert_each_published_once(sim, await pipe.deliveries(), channels, posts=40)


async def test_two_engines_at_once_publish_each_delivery_once(tmp_path, pg_stores):
    # Lost answers and errors make both engines retry and look posts up, on shared rows.
    faults = FaultConfig(error_rate=0.05, drop_rate=0.1)
    config = sim_config(faults=dict.fromkeys(Platform, faults), seed=5)
    async with Simulator(config) as sim:
        small_claims = {"claim_batch": 10, "max_in_flight": 40}
        timeouts = {"timeout_s": 2.0, "connect_timeout_s": 0.5}
        a = pg_pipeline(
            sim,
            tmp_path,
            await pg_stores.open(),
            engine=small_claims,
            **dict.fromkeys(("facebook", "instagram", "linkedin", "youtube"), timeouts),
        )
        b = pg_pipeline(sim, tmp_path, await pg_stores.open(), engine=small_claims)
        b.settings = a.settings
        channels = [await a.channel(p) for p in Platform for _ in range(2)]
        channels += [await a.channel(Platform.FACEBOOK) for _ in range(4)]
        for channel in channels:
            await a.schedule([channel], 12)
        async with (
            running_engine(a.settings, a.store) as one,
            running_engine(b.settings, b.store) as two,
        ):
            assert not one.exclusive
            assert not two.exclusive
            await asyncio.wait_for(
                asyncio.gather(
                    one.run(burst=True, burst_horizon_s=30),
                    two.run(burst=True, burst_horizon_s=30),
                ),
                90,
            )
            claimed = [
                e.metrics.registry.get_sample_value("herald_claimed_deliveries_total")
                for e in (one, two)
            ]
        deliveries = await b.deliveries()
        assert_each_published_once(sim, deliveries, channels, posts=len(channels) * 12)
        assert all(n > 0 for n in claimed), claimed  # both engines did part of the work
        # Posts committed without an answer were found by a look-up, not sent again.
        assert sum(d.reconciled for d in deliveries.values()) > 0


async def test_posts_added_by_another_process_wake_the_engine_at_once(sim, tmp_path, pg_stores):
    # The engine would otherwise look again only after idle_recheck_s (a minute here).
    engine_side = pg_pipeline(sim, tmp_path, await pg_stores.open(), engine={"idle_recheck_s": 60})
    api_side = pg_pipeline(sim, tmp_path, await pg_stores.open())
    page = await api_side.channel(Platform.FACEBOOK)
    async with running_engine(engine_side.settings, engine_side.store) as engine:
        task = asyncio.create_task(engine.run())
        try:
            # The dispatcher has looked once and found nothing: it now sleeps a minute.
            await eventually(lambda: engine.dispatcher.rounds >= 1, within_s=10)
            await api_side.schedule([page], 1)
            await eventually(lambda: sim.audit.summary()["posts"] == 1, within_s=5)
        finally:
            engine.request_stop()
            await task
