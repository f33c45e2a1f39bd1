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
import asyncio
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from redis.asyncio import Redis

from herald.domain import Content, Delivery, Job, Platform, new_id, utcnow
from herald.errors import QueueError
from herald.queues.redis_streams import RedisStreamQueue
from herald.testing import channel

# HERALD_BENCH_RESULTS: where the JSON goes (the tests smoke-run the scripts into a temp dir).
RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))


def make_jobs(count: int) -> list[Job]:
    ch = channel(Platform.FACEBOOK)
    text = "A post of a usual length, with a link and a few words more. " * 5
    return [
        Job(
            Delivery(new_id("dlv"), new_id("post"), ch.id, ch.platform, utcnow()),
            ch,
            Content(text=f"{n} {text}", link="https://example.com/post"),
            claim_token=new_id("claim"),
        )
        for n in range(count)
    ]


async def put_all(queue: RedisStreamQueue, jobs: list[Job], batch: int) -> None:
    for start in range(0, len(jobs), batch):
        await queue.put(jobs[start : start + batch])


async def drain(queues: list[RedisStreamQueue], count: int) -> None:
    done = 0
    finished = asyncio.Event()

    async def work(queue: RedisStreamQueue) -> None:
        nonlocal done
        while True:
            try:
                job = await queue.get()
            except QueueError:
                return
            await queue.ack(job)
            done += 1
            if done >= count:
                finished.set()

    tasks = [asyncio.create_task(work(q)) for q in queues]
    await finished.wait()
    for queue in queues:
        await queue.close()
    await asyncio.gather(*tasks)


@asynccontextmanager
async def worker_queues(url: str, prefix: str, count: int) -> AsyncIterator[list[RedisStreamQueue]]:
    """``count`` consumers of one group, each with a client of its own (a process each)."""
    clients = [Redis.from_url(url) for _ in range(count)]
    try:
        yield [RedisStreamQueue(c, prefix=prefix) for c in clients]
    finally:
        for c in clients:
            await c.aclose()


async def one_run(url: str, jobs: list[Job], batch: int, workers: int) -> dict[str, Any]:
    prefix = f"herald:bench:{secrets.token_hex(4)}"
    client = Redis.from_url(url)
    try:
        producer = RedisStreamQueue(client, prefix=prefix, platforms=())
        started = time.perf_counter()
        await put_all(producer, jobs, batch)
        put_s = time.perf_counter() - started
        async with worker_queues(url, prefix, workers) as consumers:
            started = time.perf_counter()
            await drain(consumers, len(jobs))
            get_s = time.perf_counter() - started
        async with worker_queues(url, prefix, workers) as consumers:
            started = time.perf_counter()
            await asyncio.gather(put_all(producer, jobs, batch), drain(consumers, len(jobs)))
            both_s = time.perf_counter() - started
        await producer.close()
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    n = len(jobs)
    return {
        "workers": workers,
        "put_jobs_per_s": round(n / put_s),
        "get_ack_jobs_per_s": round(n / get_s),
        "put_get_ack_jobs_per_s": round(n / both_s),
    }


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = make_jobs(args.jobs)
    size = len(json.dumps([j.content.text for j in jobs[:1]]))
    print(f"{args.jobs} jobs (text ~{size} bytes), batches of {args.batch}, {args.redis_url}")
    results = []
    for workers in args.workers:
        result = await one_run(args.redis_url, jobs, args.batch, workers)
        print(
            f"  {workers} worker(s): put {result['put_jobs_per_s']:>7}/s   "
            f"get+ack {result['get_ack_jobs_per_s']:>7}/s   "
            f"put while get+ack {result['put_get_ack_jobs_per_s']:>7}/s"
        )
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--redis-url", default=os.environ.get("HERALD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    results = uvloop.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    out = RESULTS / f"redis-queue-{day}.json"
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
