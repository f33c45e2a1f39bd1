"""Jobs per second through one RabbitMQ with the RabbitMQ queue: put, then get and ack.

.venv/bin/python bench/rabbit_queue.py   # 20,000 jobs, 1 and 4 workers
.venv/bin/python bench/rabbit_queue.py --jobs 50000 --batch 500 --workers 1 8 --prefetch 50

A producer puts ``--jobs`` jobs in batches of ``--batch`` (each batch published at once and
confirmed by the broker, as the dispatcher does with a claimed batch); then ``--workers``
consumers of the quorum queue, each a queue with a connection of its own as separate processes
would have, with ``--prefetch`` jobs unacked at most (messages carry several: see
herald.queues.bundles), get and ack them all. Then both at
once: the producer puts while the workers drain. Jobs are of the size the engine sends (a
delivery, its channel, a few hundred characters of text). Every run uses a name prefix of its
own, whose queues and exchanges are deleted at the end. Prints the figures and writes them to
``bench/results/rabbit-queue-<date>.json``.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import uvloop

from herald.domain import Job, Platform
from herald.queues.amqp import Topology
from herald.queues.rabbitmq import RabbitQueue
from herald.types import JobQueue
from queue_runs import (
    add_run_arguments,
    each_worker_count,
    make_jobs,
    text_size,
    timed_runs,
    write_results,
)


async def delete_topology(url: str, prefix: str) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        t = Topology(prefix, delivery_limit=1)
        await channel.queue_delete(t.queue(Platform.FACEBOOK, "default"))
        await channel.queue_delete(t.dead_queue)
        await channel.exchange_delete(t.exchange)
        await channel.exchange_delete(t.dead_exchange)
    finally:
        await connection.close()


async def one_run(args: argparse.Namespace, jobs: list[Job], workers: int) -> dict[str, Any]:
    prefix = f"herald.bench.{secrets.token_hex(4)}"

    @asynccontextmanager
    async def worker_queues(count: int) -> AsyncIterator[list[JobQueue]]:
        """``count`` consumers, each with a connection of its own (a process each); drain()
        closes them, which closes their connections once every job is acked."""
        yield [
            RabbitQueue(
                args.rabbitmq_url,
                prefix=prefix,
                platforms=[Platform.FACEBOOK],
                prefetch=args.prefetch,
            )
            for _ in range(count)
        ]

    producer = RabbitQueue(args.rabbitmq_url, prefix=prefix, platforms=())
    try:
        return await timed_runs(producer, worker_queues, jobs, args.batch, workers)
    finally:
        await producer.close()
        await delete_topology(args.rabbitmq_url, prefix)


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    jobs = make_jobs(args.jobs)
    print(
        f"{args.jobs} jobs (text ~{text_size(jobs)} bytes), batches of {args.batch}, "
        f"prefetch {args.prefetch}, {args.rabbitmq_url.rpartition('@')[2]}"
    )
    return await each_worker_count(args.workers, lambda workers: one_run(args, jobs, workers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    parser.add_argument("--prefetch", type=int, default=20)
    parser.add_argument(
        "--rabbitmq-url",
        default=os.environ.get("HERALD_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    )
    args = parser.parse_args()
    results = uvloop.run(run(args))
    write_results("rabbit-queue", vars(args), results)


if __name__ == "__main__":
    main()
