"""What the queue benchmarks share (bench/redis_queue.py, bench/rabbit_queue.py): the jobs, the
producer and the workers, the three timed runs, the printed line and the JSON written.

A producer puts the jobs in batches (one call each, as the dispatcher does with a claimed
batch); then ``workers`` consumers, each a queue of its own as separate processes would have,
get and ack them all. Then both at once: the producer puts while the workers drain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from herald.domain import Content, Delivery, Job, Platform, new_id, utcnow
from herald.errors import QueueError
from herald.testing import channel
from herald.types import JobQueue

# HERALD_BENCH_RESULTS: where the JSON goes (the tests smoke-run the scripts into a temp dir).
RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))

#: Opens ``count`` worker queues (consumers of the same jobs) and closes what they hold.
Workers = Callable[[int], AbstractAsyncContextManager[list[JobQueue]]]


def make_jobs(count: int) -> list[Job]:
    """Jobs of the size the engine sends: a delivery, its channel, a few hundred characters."""
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


async def put_all(queue: JobQueue, jobs: list[Job], batch: int) -> None:
    for start in range(0, len(jobs), batch):
        await queue.put(jobs[start : start + batch])


async def drain(queues: list[JobQueue], count: int) -> None:
    """Get and ack ``count`` jobs with every queue at once, then close them."""
    done = 0
    finished = asyncio.Event()

    async def work(queue: JobQueue) -> None:
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


async def timed_runs(
    producer: JobQueue, workers: Workers, jobs: list[Job], batch: int, count: int
) -> dict[str, Any]:
    """Put, then get and ack with ``count`` workers, then both at once: jobs per second."""
    started = time.perf_counter()
    await put_all(producer, jobs, batch)
    put_s = time.perf_counter() - started
    async with workers(count) as consumers:
        started = time.perf_counter()
        await drain(consumers, len(jobs))
        get_s = time.perf_counter() - started
    async with workers(count) as consumers:
        started = time.perf_counter()
        await asyncio.gather(put_all(producer, jobs, batch), drain(consumers, len(jobs)))
        both_s = time.perf_counter() - started
    n = len(jobs)
    return {
        "workers": count,
        "put_jobs_per_s": round(n / put_s),
        "get_ack_jobs_per_s": round(n / get_s),
        "put_get_ack_jobs_per_s": round(n / both_s),
    }


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every queue benchmark takes: how many jobs, in batches of how many, with
    how many workers (one run per count)."""
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])


async def each_worker_count(
    counts: list[int], one_run: Callable[[int], Awaitable[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """``one_run`` with each count of workers, printed as it ends."""
    results = []
    for count in counts:
        result = await one_run(count)
        print_result(result)
        results.append(result)
    return results


def print_result(result: dict[str, Any]) -> None:
    print(
        f"  {result['workers']} worker(s): put {result['put_jobs_per_s']:>7}/s   "
        f"get+ack {result['get_ack_jobs_per_s']:>7}/s   "
        f"put while get+ack {result['put_get_ack_jobs_per_s']:>7}/s"
    )


def write_results(name: str, args: dict[str, Any], results: list[dict[str, Any]]) -> Path:
    """``bench/results/<name>-<date>.json`` (or under HERALD_BENCH_RESULTS)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    out = RESULTS / f"{name}-{day}.json"
    out.write_text(json.dumps({"args": args, "results": results}, indent=2) + "\n")
    print(f"written to {out}")
    return out


def text_size(jobs: list[Job]) -> int:
    return len(json.dumps([j.content.text for j in jobs[:1]]))


__all__ = [
    "add_run_arguments",
    "drain",
    "each_worker_count",
    "make_jobs",
    "print_result",
    "put_all",
    "text_size",
    "timed_runs",
    "write_results",
]
