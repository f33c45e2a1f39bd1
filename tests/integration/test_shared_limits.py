"""Two `herald run` processes on one PostgreSQL database share their limits through Redis:
together they spend a tight daily quota exactly, and the platform never sees one post over."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from herald.config import LinkedInSettings, Settings
from herald.domain import Platform
from herald.simulator import LatencyModel, Simulator, SimulatorConfig
from herald.states import DeliveryState
from herald.stores.postgres import PostgresStore
from tests.conftest import PG_URL, REDIS_URL, drop_keys, new_redis
from tests.integration.test_postgres_pipeline import pg_pipeline
from tests.integration.test_postgres_process import herald, pg_engine_env

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

QUOTA = 10  # LinkedIn posts per member per day, on the platform and in Herald
POSTS = 16


@pytest.fixture
async def sim():
    settings = Settings(linkedin=LinkedInSettings(member_posts_per_day=QUOTA))
    config = SimulatorConfig.from_settings(
        settings, latency=LatencyModel(median_s=0.02, p99_s=0.05), seed=7
    )
    async with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
async def prefix():
    prefix = f"herald:test:{secrets.token_hex(6)}"
    yield prefix
    client = new_redis()
    try:
        await drop_keys(client, prefix)
    finally:
        await client.aclose()


async def test_two_engines_spend_a_daily_quota_whole_and_never_over(
    sim: Simulator, tmp_path, pg_schema, prefix
):
    url = f"{PG_URL}?schema={pg_schema}"
    env = pg_engine_env(
        sim,
        url,
        HERALD_LINKEDIN__MEMBER_POSTS_PER_DAY=str(QUOTA),
        HERALD_LIMITS__REDIS_PREFIX=prefix,
        # Small claims, so that both engines publish to the channel, not the first alone.
        HERALD_ENGINE__CLAIM_BATCH="1",
        HERALD_ENGINE__MAX_IN_FLIGHT="2",
    )
    assert await herald(env, "migrate") == 0
    store = PostgresStore(url)
    await store.open()
    try:
        pipe = pg_pipeline(sim, tmp_path, store)
        channel = await pipe.channel(Platform.LINKEDIN)
        await pipe.schedule([channel], POSTS)
        run = ("run", "--burst", "--redis-url", REDIS_URL)
        assert await asyncio.gather(herald(env, *run), herald(env, *run)) == [0, 0]
        states = [d.state for d in (await pipe.deliveries()).values()]
    finally:
        await store.close()
    summary = sim.audit.summary()
    assert summary["limit_violations"] == 0  # together, never one over
    assert summary["posts"] == QUOTA  # the quota used whole, not half of it each
    assert states.count(DeliveryState.PUBLISHED) == QUOTA
    assert states.count(DeliveryState.SCHEDULED) == POSTS - QUOTA  # waiting for tomorrow
