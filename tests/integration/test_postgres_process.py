"""`herald migrate` and `herald run` on PostgreSQL through the CLI: two engines at once, and an
engine killed (SIGKILL) while holding claims, whose successor takes them over in seconds."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from herald import __version__
from herald.config import Settings
from herald.domain import Platform
from herald.simulator import LatencyModel, Simulator, SimulatorConfig
from herald.states import DeliveryState
from herald.stores.postgres import PostgresStore
from herald.testing import eventually
from tests.conftest import PG_URL
from tests.integration.pipeline import FAST_LISTINGS
from tests.integration.test_postgres_pipeline import assert_each_published_once, pg_pipeline
from tests.integration.test_process import engine_env, spawn

S = DeliveryState
POSTS_PER_CHANNEL = 120

pytestmark = pytest.mark.postgres


@pytest.fixture
async def sim():
    config = SimulatorConfig.from_settings(
        Settings(),
        latency=LatencyModel(median_s=0.02, p99_s=0.05),
        seed=7,
        listing_lag=FAST_LISTINGS,
    )
    async with Simulator(config) as simulator:
        yield simulator


async def herald(env: dict[str, str], *args: str) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", *args, env=env
    )
    return await asyncio.wait_for(process.wait(), 60)


def pg_engine_env(sim: Simulator, url: str, **settings: str) -> dict[str, str]:
    """``herald`` processes' environment on the PostgreSQL database at ``url``, plus
    ``settings`` (environment variables)."""
    env = engine_env(sim, "")
    del env["HERALD_DB"]
    return env | {"HERALD_DATABASE_URL": url, **settings}


async def test_two_herald_run_processes_share_one_database(sim: Simulator, tmp_path, pg_schema):
    url = f"{PG_URL}?schema={pg_schema}"
    env = pg_engine_env(sim, url)
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def scraped(port: int) -> dict[tuple[str, ...], float]:
    """A process's ``/metrics``: each sample by its name and its label values, sorted by name."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        text = await answer.text()
    return {
        (sample.name, *(v for _, v in sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def probe(port: int, path: str) -> int:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}{path}") as answer,
        ):
            return answer.status
    except aiohttp.ClientError:
        return 0  # not listening yet


async def test_a_killed_engine_s_claims_are_published_by_its_successor_in_seconds(
    tmp_path, pg_schema
):
    # Slow enough requests that the first engine holds hundreds of claims when it is killed.
    config = SimulatorConfig.from_settings(
        Settings(),
        latency=LatencyModel(median_s=0.05, p99_s=0.1),
        seed=11,
        listing_lag=FAST_LISTINGS,
    )
    url = f"{PG_URL}?schema={pg_schema}"
    async with Simulator(config) as sim:
        # Beats every half second, dead after two; the lease stays 300 s.
        env = pg_engine_env(
            sim, url, HERALD_ENGINE__HEARTBEAT_S="0.5", HERALD_ENGINE__DEAD_AFTER_S="2"
        )
        assert await herald(env, "migrate") == 0
        store = PostgresStore(url)
        await store.open()
        try:
            pipe = pg_pipeline(sim, tmp_path, store)
            # Within every quota: LinkedIn's 150 a member a day, say.
            platforms = (Platform.FACEBOOK, Platform.FACEBOOK, Platform.LINKEDIN)
            channels = [await pipe.channel(p) for p in platforms]
            for channel in channels:
                await pipe.schedule([channel], POSTS_PER_CHANNEL)
            first = await spawn(env)
            await eventually(lambda: sim.audit.summary()["posts"] >= 40, within_s=30)
            first.kill()
            await first.wait()
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            held = [
                d
                for d in (await pipe.deliveries()).values()
                if d.state in (S.CLAIMED, S.PUBLISHING)
            ]
            assert len(held) > 100  # the dead engine's claims, leased for minutes

            port = free_port()
            second = await spawn(env, "--probe-port", str(port))
            try:
                await eventually(
                    lambda: sim.audit.summary()["posts"] == 3 * POSTS_PER_CHANNEL, within_s=60
                )
                taken_over_s = loop.time() - killed_at
                await eventually(lambda: probe(port, "/readyz"), within_s=10)
                assert await probe(port, "/readyz") == 200
                found = await scraped(port)
                info = ("herald_process_info", "default", "run", __version__)
                assert found[info] == 1.0
                published = ("herald_store_deliveries", "published")
                assert found[published] == 3 * POSTS_PER_CHANNEL
                # Every claim the dead engine held, given back by this one.
                assert found[("herald_lease_recoveries_total", "expired_lease")] == len(held)
            finally:
                second.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(second.wait(), 30) == 0
            # dead_after_s, a beat, and the time to send what was left: not the 300 s lease.
            assert taken_over_s < 20, taken_over_s
            assert_each_published_once(
                sim, await pipe.deliveries(), channels, posts=3 * POSTS_PER_CHANNEL
            )
            assert await store.list_engines() == []  # the dead one judged, the second left
        finally:
            await store.close()
