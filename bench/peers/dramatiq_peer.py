"""dramatiq on its Redis broker, with dramatiq's Redis rate limiters for the platform's limits.

    python -m bench.peers.dramatiq_peer worker|enqueue     # PEER_JOB holds the job

One actor message per post, carrying the post's fields. The Redis broker acknowledges a
message only after the actor returns (at least once), and its ``Retries`` middleware retries
any exception with exponential backoff: ``PublishFailed``, requests' and psycopg's connection
errors, and ``RateLimitExceeded`` from a limit that binds. One worker process runs
``job.in_flight`` threads.

Limits: one limiter per Page (``job.extra["page_limit_per_hour"]``) and one for the app
(``job.extra["app_limit_per_hour"]``), both ``BucketRateLimiter``s of an hour on dramatiq's
``RedisBackend``. With the defaults they never bind, but every message pays their Redis
round trips, as a user's would. dramatiq's sliding ``WindowRateLimiter`` keeps one Redis key
per second of its window, and watches and reads all of them on each acquire: over an hour,
3,600 keys, measured here at 14 acquires/s for one thread and about 3/s for 8 threads sharing
the app's key (optimistic-lock retries), so a user with hourly limits takes the bucket, the
limiter dramatiq's documentation calls cheap to maintain.

The broker is set when this module is imported, because dramatiq binds an actor to the broker
set when the actor is declared. Without a job in the environment (the runner imports this
module for :func:`workers`) that broker is dramatiq's in-memory stub, and nothing connects.
"""

from __future__ import annotations

import os
import sys
from dataclasses import astuple
from functools import cache

import dramatiq
from bench.peers.common import (
    Item,
    Job,
    due_posts_sync,
    publish_sync,
    record_sync,
    thread_conn,
    thread_session,
)
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.rate_limits import BucketRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

__all__ = ["SETUP", "broker", "main", "publish", "workers"]

SETUP = False  # the broker declares its queue on first use
QUEUE = "peers-v1-dramatiq"  # the run's Redis database is flushed, so no run id is needed
LIMIT_KEY = "peers:v1:dramatiq:limit"

HOUR_MS = 3_600_000
#: 1 s doubling to 5 min, with dramatiq's jitter: 20 retries (its default) wait about an hour
#: in all, so a post held back by an hourly limit outlasts the bucket rather than dying.
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 300_000
MAX_RETRIES = 20
#: The runner gives a stopping worker 15 s before SIGKILL; dramatiq's default is 10 min. A
#: message cut off here stays unacknowledged and comes back after the heartbeat timeout.
SHUTDOWN_TIMEOUT_MS = 10_000


@cache
def _job() -> Job:
    return Job.from_env()


def _broker() -> dramatiq.Broker:
    if "PEER_JOB" not in os.environ:
        return StubBroker()
    # dramatiq's defaults (heartbeat timeout, dead-message TTL, middleware: AgeLimit,
    # TimeLimit, Retries, ...) are its documented settings; no Prometheus middleware is added.
    return RedisBroker(url=_job().redis_url)


broker = _broker()
dramatiq.set_broker(broker)


@cache
def _limits() -> RedisBackend:
    # One backend (one connection pool, thread-safe) shared by the worker's threads.
    return RedisBackend(url=_job().redis_url)


def _page_limiter(job: Job, page_id: str) -> BucketRateLimiter:
    limit = int(job.extra.get("page_limit_per_hour", 100_000))
    return BucketRateLimiter(_limits(), f"{LIMIT_KEY}:page:{page_id}", limit=limit, bucket=HOUR_MS)


def _app_limiter(job: Job) -> BucketRateLimiter:
    limit = int(job.extra.get("app_limit_per_hour", 10_000_000))
    return BucketRateLimiter(_limits(), f"{LIMIT_KEY}:app", limit=limit, bucket=HOUR_MS)


@dramatiq.actor(
    queue_name=QUEUE,
    max_retries=MAX_RETRIES,
    min_backoff=MIN_BACKOFF_MS,
    max_backoff=MAX_BACKOFF_MS,
)
def publish(key: str, page_id: str, token: str, text: str) -> None:
    job, it = _job(), Item(key, page_id, token, text)
    # A limit that binds raises RateLimitExceeded: dramatiq retries the message later.
    with _page_limiter(job, page_id).acquire(), _app_limiter(job).acquire():
        post_id = publish_sync(thread_session(), job, it)
    record_sync(thread_conn(job), job, it, post_id)


def workers(job: Job) -> list[list[str]]:
    """The argv of the one worker process (dramatiq's CLI forks it): ``job.in_flight``
    threads, each running one message at a time."""
    return [
        [
            *(sys.executable, "-m", "dramatiq", "bench.peers.dramatiq_peer"),
            *("--processes", "1", "--threads", str(job.in_flight), "--queues", QUEUE),
            *("--worker-shutdown-timeout", str(SHUTDOWN_TIMEOUT_MS)),
        ]
    ]


def enqueue(job: Job) -> int:
    due = due_posts_sync(job)
    try:
        # Each send is one script call on Redis, done when it returns: nothing to flush.
        # dramatiq has no bulk enqueue (a group sends its messages one by one too).
        for it in due:
            publish.send(*astuple(it))
    finally:
        broker.close()
    return len(due)


def main(argv: list[str]) -> None:
    match argv:
        case ["worker"]:
            argv0 = workers(_job())[0]
            os.execv(argv0[0], argv0)
        case ["enqueue"]:
            enqueue(_job())
        case _:
            sys.exit("usage: python -m bench.peers.dramatiq_peer worker|enqueue")


if __name__ == "__main__":
    main(sys.argv[1:])
