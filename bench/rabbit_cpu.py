"""CPU per job of the RabbitMQ queue's two sides, at a dispatcher's and a worker's pace.

.venv/bin/python bench/rabbit_cpu.py                       # 3 reps of each side
.venv/bin/python bench/rabbit_cpu.py --jobs 3000 --reps 5

**Publisher**: one queue puts ``--put-jobs`` jobs ``--batch`` at a time (each put published at
once and confirmed, as the dispatcher puts a claimed batch); its process's CPU per job.

**Consumer**: a producer in a process of its own puts a message of ``--bundle`` jobs every
``--every-ms`` (the default, 8 jobs every 70 ms, is a worker's share of four in
bench/distributed.py's throughput run); one consumer gets them, holds each 20 to 60 ms (its
request and its write: an ack goes only once the outcome is written) with ``--held`` at a time,
then acks it. Its process's CPU per job, the harness's own task and timer per job included.
What the figures are for: what the queue's code costs per job where a whole-system run on a
shared machine cannot resolve it (docs/benchmarks.md, "Four RabbitMQ workers"); run it on two
checkouts to compare them.

Every run uses a name prefix of its own, whose queues and exchanges are deleted at the end.
Prints the figures and writes them to ``bench/results/rabbit-cpu-<date>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import secrets
import statistics
import time
from typing import Any

import uvloop

from herald.domain import Job, Platform
from herald.queues.rabbitmq import RabbitQueue
from queue_runs import make_jobs, write_results
from rabbit_queue import delete_topology

_HOLD_S = (0.02, 0.06)  # how long the consumer holds a job before its ack


async def publisher_cpu(url: str, jobs: list[Job], batch: int) -> float:
    """Seconds of this process's CPU to put ``jobs``, ``batch`` at a time."""
    prefix = f"herald.bench.{secrets.token_hex(4)}"
    queue = RabbitQueue(url, prefix=prefix, platforms=())
    try:
        await queue.put(jobs[:1])  # connected and declared before the clock starts
        started = time.process_time()
        for first in range(1, len(jobs), batch):
            await queue.put(jobs[first : first + batch])
        return time.process_time() - started
    finally:
        await queue.close()
        await delete_topology(url, prefix)


def _produce(url: str, prefix: str, count: int, bundle: int, every_s: float) -> None:
    """In a process of its own: a message of ``bundle`` jobs every ``every_s``."""

    async def paced() -> None:
        queue = RabbitQueue(url, prefix=prefix, platforms=(), bundle=bundle)
        try:
            jobs = make_jobs(count)
            for first in range(0, count, bundle):
                await queue.put(jobs[first : first + bundle])
                await asyncio.sleep(every_s)
        finally:
            await queue.close()

    uvloop.run(paced())


async def consumer_cpu(args: argparse.Namespace) -> float:
    """Seconds of this process's CPU to get, hold and ack ``--jobs`` paced jobs."""
    prefix = f"herald.bench.{secrets.token_hex(4)}"
    queue = RabbitQueue(args.rabbitmq_url, prefix=prefix, platforms=[Platform.FACEBOOK])
    # Consuming before the producer starts: the queue exists and nothing waits in it.
    await queue.refresh_depth()
    producer = multiprocessing.get_context("spawn").Process(
        target=_produce,
        args=(args.rabbitmq_url, prefix, args.jobs, args.bundle, args.every_ms / 1000),
    )
    held = asyncio.Semaphore(args.held)
    acked = 0
    all_acked = asyncio.Event()

    async def hold_then_ack(job: Job) -> None:
        nonlocal acked
        await asyncio.sleep(random.uniform(*_HOLD_S))
        await queue.ack(job)
        held.release()
        acked += 1
        if acked == args.jobs:
            all_acked.set()

    running: set[asyncio.Task[None]] = set()
    try:
        producer.start()
        await held.acquire()
        first = await queue.get()  # the clock starts with the first job
        started = time.process_time()
        for n in range(args.jobs):
            job = first if n == 0 else await queue.get()
            task = asyncio.create_task(hold_then_ack(job))
            running.add(task)
            task.add_done_callback(running.discard)
            if n + 1 < args.jobs:
                await held.acquire()
        await all_acked.wait()
        return time.process_time() - started
    finally:
        await asyncio.to_thread(producer.join, 60)
        await queue.close()
        await delete_topology(args.rabbitmq_url, prefix)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    jobs = make_jobs(args.put_jobs)
    publisher, consumer = [], []
    for rep in range(args.reps):
        put_s = await publisher_cpu(args.rabbitmq_url, jobs, args.batch)
        publisher.append(round(put_s / len(jobs) * 1e6, 1))
        got_s = await consumer_cpu(args)
        consumer.append(round(got_s / args.jobs * 1e6, 1))
        print(f"rep {rep}: publisher {publisher[-1]} µs/job, consumer {consumer[-1]} µs/job")
    return {
        "publisher_us_per_job": publisher,
        "consumer_us_per_job": consumer,
        "publisher_median": statistics.median(publisher),
        "consumer_median": statistics.median(consumer),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000, help="jobs the consumer takes")
    parser.add_argument("--put-jobs", type=int, default=12_000, help="jobs the publisher puts")
    parser.add_argument("--batch", type=int, default=100, help="jobs a put")
    parser.add_argument("--bundle", type=int, default=8, help="jobs a paced message")
    parser.add_argument("--every-ms", type=float, default=70.0, help="between paced messages")
    parser.add_argument("--held", type=int, default=32, help="jobs the consumer holds at once")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--rabbitmq-url",
        default=os.environ.get("HERALD_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    args = parser.parse_args()
    result = uvloop.run(run(args))
    print(
        f"median: publisher {result['publisher_median']} µs/job, "
        f"consumer {result['consumer_median']} µs/job"
    )
    write_results("rabbit-cpu", vars(args), [result])


if __name__ == "__main__":
    main()
