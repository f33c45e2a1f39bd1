"""`herald migrate` and `herald run` on PostgreSQL through the CLI, two engines at once."""

from __future__ import annotations

import asyncio
import sys

import pytest

from herald.config import Settings
from herald.domain import Platform
from herald.simulator import LatencyModel, Simulator, SimulatorConfig
from herald.stores.postgres import PostgresStore
from tests.conftest import PG_URL
from tests.integration.test_postgres_pipeline import assert_each_published_once, pg_pipeline
from tests.integration.test_process import engine_env

pytestmark = pytest.mark.postgres


@pytest.fixture
async def sim():
    config = SimulatorConfig.from_settings(
        Settings(), latency=LatencyModel(median_s=0.02, p99_s=0.05), seed=7
    )
    async with Simulator(config) as simulator:
        yield simulator


async def herald(env: dict[str, str], *args: str) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", *args, env=env
    )
    return await asyncio.wait_for(process.wait(), 60)


async def test_two_herald_run_processes_share_one_database(sim: Simulator, tmp_path, pg_schema):
    url = f"{PG_URL}?schema={pg_schema}"
    env = engine_env(sim, "")
    del env["HERALD_DB"]
    env["HERALD_DATABASE_URL"] = url
    assert await herald(env, "migrate") == 0
    store = PostgresStore(url)
    await store.open()
    try:
        assert store.schema == pg_schema
        pipe = pg_pipeline(sim, tmp_path, store)
        channels = [await pipe.channel(p) for p in (Platform.FACEBOOK, Platform.LINKEDIN)]
        for channel in channels:
            await pipe.schedule([channel], 30)
        codes = await asyncio.gather(herald(env, "run", "--burst"), herald(env, "run", "--burst"))
        assert codes == [0, 0]
        assert_each_published_once(sim, await pipe.deliveries(), channels, posts=60)
    finally:
        await store.close()
