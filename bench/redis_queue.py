"""Jobs per second through one Redis with the Redis Streams queue: put, then get and ack.

    .venv/bin/python bench/redis_queue.py                        # 20,000 jobs, 1 and 4 workers
    .venv/bin/python bench/redis_queue.py --jobs 50000 --batch 500 --workers 1 8

A producer puts ``--jobs`` jobs in batches of ``--batch`` (one round trip each, as the
dispatcher does with a claimed batch); then ``--workers`` consumers of one group, each a queue
of its own as separate processes would have, get and ack them all. Then both at once: the
producer puts while the workers drain. Jobs are of the size the engine sends (a delivery, its
channel, a few hundred characters of text). Every run uses a key prefix of its own, deleted at
the end. Prints the figures and writes them to ``bench/results/redis-queue-<date>.json``.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvloop
from redis.asyncio import Redis

from herald.domain import Job
from herald.queues.redis_streams import RedisStreamQueue
from herald.types import JobQueue
from queue_runs import (
    add_run_arguments,
    each_worker_count,
    make_jobs,
    text_size,
    timed_runs,
    write_results,
)


async def one_run(url: str, jobs: list[Job], batch: int, workers: int) -> dict[str, Any]:
    prefix = f"herald:bench:{secrets.token_hex(4)}"
    client = Redis.from_url(url)

    @asynccontextmanager
    async def worker_queues(count: int) -> AsyncIterator[list[JobQueue]]:
        """``count`` consumers of one group, each with a client of its own (a process each)."""
        clients = [Redis.from_url(url) for _ in range(count)]
        try:
            yield [RedisStreamQueue(c, prefix=prefix) for c in clients]
        finally:
            for c in clients:
                await c.aclose()

    try:
        producer = RedisStreamQueue(client, prefix=prefix, platforms=())
        result = await timed_runs(producer, worker_queues, jobs, batch, workers)
        await producer.close()
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return result


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = make_jobs(args.jobs)
    size = text_size(jobs)
    print(f"{args.jobs} jobs (text ~{size} bytes), batches of {args.batch}, {args.redis_url}")
    return await each_worker_count(
        args.workers, lambda workers: one_run(args.redis_url, jobs, args.batch, workers)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    parser.add_argument(
        "--redis-url", default=os.environ.get("HERALD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    results = uvloop.run(run(args))
    write_results("redis-queue", vars(args), results)


if __name__ == "__main__":
    main()
