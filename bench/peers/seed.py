"""The design Herald's roadmap started from, written as it describes it.

A Redis list is the queue (the scheduler ``LPUSH``es each due post, workers ``RPOP``), workers
poll the list with a fixed sleep when it is empty, and a platform limit is an ``INCR`` +
``EXPIRE`` counter per Page and per app and hour. One process runs ``in_flight`` asyncio
workers, each with its own request in flight at most, sharing an HTTP session and a
PostgreSQL pool. A failed request is pushed back for another try (up to
``_MAX_TRIES``). Nothing here survives a worker's crash: an item popped and not finished
is gone, which is the design's documented weakness, not something this benchmark adds.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from bench.peers.common import Item, Job, PublishFailed, due_posts, publish_async, record_async

SETUP = False
_POLL_S = 0.1  # the roadmap's fixed sleep when the list is empty
_MAX_TRIES = 3
_QUEUE = "seed:posts"


def workers(job: Job) -> list[list[str]]:
    return [[sys.executable, "-m", "bench.peers.seed", "worker"]]


async def _allowed(redis: aioredis.Redis, job: Job, item: Item) -> bool:
    """The roadmap's limiter: a counter per Page and per app for the current hour."""
    hour = int(time.time() // 3600)
    limits = {
        f"seed:limit:page:{item.page_id}:{hour}": int(job.extra.get("page_limit_per_hour", 10**6)),
        f"seed:limit:app:{hour}": int(job.extra.get("app_limit_per_hour", 10**9)),
    }
    for key, limit in limits.items():
        count = await redis.incr(key)
        if count == 1:
            await redis.expire(key, 3600)
        if count > limit:
            return False
    return True


async def _work(
    job: Job,
    redis: aioredis.Redis,
    http: aiohttp.ClientSession,
    db: asyncpg.Pool,
    stopping: asyncio.Event,
) -> None:
    while not stopping.is_set():
        raw = await redis.rpop(_QUEUE)
        if raw is None:
            await asyncio.sleep(_POLL_S)
            continue
        message = json.loads(raw)
        item = Item(**message["item"])
        if not await _allowed(redis, job, item):
            await redis.lpush(_QUEUE, raw)  # over the limit: later
            await asyncio.sleep(_POLL_S)
            continue
        try:
            post_id = await publish_async(http, job, item)
        except (TimeoutError, PublishFailed, aiohttp.ClientError):
            if message["tries"] + 1 < _MAX_TRIES:
                await redis.lpush(_QUEUE, json.dumps({**message, "tries": message["tries"] + 1}))
            continue
        await record_async(db, job, item, post_id)


async def worker(job: Job) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    redis = aioredis.Redis.from_url(job.redis_url)
    db = await asyncpg.create_pool(job.database_url, min_size=1, max_size=job.in_flight)
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(_work(job, redis, http, db, stopping) for _ in range(job.in_flight)))
    await db.close()
    await redis.aclose()


async def enqueue(job: Job) -> None:
    due = await due_posts(job)
    redis = aioredis.Redis.from_url(job.redis_url)
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for item in due:
                pipe.lpush(_QUEUE, json.dumps({"item": item.__dict__, "tries": 0}))
            await pipe.execute()
    finally:
        await redis.aclose()


def main() -> None:
    job = Job.from_env()
    role = sys.argv[1]
    if role == "worker":
        asyncio.run(worker(job))
    elif role == "enqueue":
        asyncio.run(enqueue(job))
    else:
        raise SystemExit(f"seed: no role {role!r}")


if __name__ == "__main__":
    main()
