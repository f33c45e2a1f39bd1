"""The distributed mode through the CLI: `herald dispatcher` and `herald worker` processes on
PostgreSQL, through a Redis Streams broker of the test's own, limits shared through Redis.

A worker takes only its platforms' and its region's jobs: what no worker serves waits (its
claims lapse and are claimed again) and is published, once, when one comes."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from herald import __version__
from herald.demo.servers import OwnRedis
from herald.domain import Platform
from herald.stores.postgres import PostgresStore
from herald.testing import eventually
from tests.conftest import PG_URL, new_redis_prefix
from tests.integration.test_postgres_pipeline import assert_each_published_once, pg_pipeline
from tests.integration.test_postgres_process import (  # noqa: F401
    free_port,
    herald,
    pg_engine_env,
    sim,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

POSTS = 15


async def start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "herald.cli", *args, env=env)


async def metrics(port: int) -> dict[tuple[str, str], float]:
    """``herald_queue_backlog`` as the process's probe serves it, by (platform, region)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        text = await answer.text()
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "herald_queue_backlog":
            for sample in family.samples:
                found[sample.labels["platform"], sample.labels["region"]] = sample.value
    return found


async def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample a process's probe serves, by name and labels."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as answer,
    ):
        text = await answer.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(found, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def assert_role_metrics(dispatcher, worker, posts: int) -> None:
    """Each role exports what it has: the dispatcher the store-wide view and the broker, the
    facebook worker its admissions, the shared limiter's busiest keys and the broker."""
    info = {"version": __version__, "region": "default"}
    assert sample(dispatcher, "herald_process_info", role="dispatcher", **info) == 1.0
    assert sample(worker, "herald_process_info", role="worker", **info) == 1.0
    assert sample(dispatcher, "herald_store_deliveries", state="published") == posts
    assert sample(dispatcher, "herald_webhook_backlog") == 0.0
    assert sample(dispatcher, "herald_channels_needing_reauth", platform="facebook") == 0.0
    assert sample(worker, "herald_store_deliveries", state="published") is None
    for found in (dispatcher, worker):
        assert sample(found, "herald_broker_up") == 1.0
    assert sample(dispatcher, "herald_limiter_up") is None
    assert sample(worker, "herald_limiter_up") == 1.0
    assert sample(worker, "herald_rate_limit_grants_total", platform="facebook") == posts
    sent = "herald_delivery_sent_lateness_seconds_count"
    assert sample(worker, sent, platform="facebook") == posts
    # One channel's posts, counted in Redis and read back by the admissions themselves.
    assert sample(worker, "herald_quota_used", platform="facebook", rule="page_calls") == posts


async def stop(*processes: asyncio.subprocess.Process) -> list[int]:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    return [await asyncio.wait_for(p.wait(), 30) for p in processes]


async def test_workers_publish_only_their_region_and_platforms(sim, tmp_path, pg_schema):  # noqa: F811
    broker = OwnRedis()
    broker.start()
    url = f"{PG_URL}?schema={pg_schema}"
    env = pg_engine_env(
        sim,
        url,
        HERALD_BROKER__URL=broker.url,
        HERALD_BROKER__HANDOFF_S="5",
        HERALD_LIMITS__REDIS_PREFIX=new_redis_prefix(),
        HERALD_ENGINE__HEARTBEAT_S="0.5",
        HERALD_ENGINE__DEAD_AFTER_S="2",
    )
    assert await herald(env, "migrate") == 0
    store = PostgresStore(url)
    await store.open()
    processes: list[asyncio.subprocess.Process] = []
    try:
        pipe = pg_pipeline(sim, tmp_path, store)
        here = await pipe.channel(Platform.FACEBOOK)
        eu = await pipe.channel(Platform.FACEBOOK, region="eu-west-1")
        linkedin = await pipe.channel(Platform.LINKEDIN)
        for channel in (here, eu, linkedin):
            await pipe.schedule([channel], POSTS)

        def published(channel) -> int:
            return sum(1 for p in sim.audit.posts() if p.account == channel.external_id)

        port = free_port()
        processes.append(await start(env, "dispatcher", "--probe-port", str(port)))
        worker_port = free_port()
        processes.append(
            await start(env, "worker", "--platforms", "facebook", "--probe-port", str(worker_port))
        )
        await eventually(lambda: published(here) == POSTS, within_s=30)
        # Long enough for claims to be handed off, lapse and be handed off again.
        await asyncio.sleep(6)
        assert (published(eu), published(linkedin)) == (0, 0)
        # What waits unread, per platform and region: what an autoscaler reads.
        backlog = await metrics(port)
        assert backlog[("linkedin", "default")] == POSTS, backlog
        assert backlog[("facebook", "eu-west-1")] == POSTS, backlog
        assert_role_metrics(await scrape(port), await scrape(worker_port), POSTS)

        processes.append(await start(env, "worker", "--region", "eu-west-1"))
        await eventually(lambda: published(eu) == POSTS, within_s=30)
        assert published(linkedin) == 0  # a worker of eu-west-1 takes none of the default's

        processes.append(await start(env, "worker", "--platforms", "linkedin"))
        await eventually(lambda: published(linkedin) == POSTS, within_s=30)
        assert await stop(*processes) == [0] * len(processes)
        processes.clear()
        assert_each_published_once(
            sim, await pipe.deliveries(), [here, eu, linkedin], posts=3 * POSTS
        )
        assert await store.list_engines() == []  # each left the registry on its way out
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        await store.close()
        broker.stop()
