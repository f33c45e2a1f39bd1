"""Celery on its Redis broker, with the settings its documentation gives for no loss.

    python -m bench.peers.celery_peer worker|enqueue     # PEER_JOB holds the job

One task per post, retried by Celery's ``autoretry_for``. ``job.extra["pool"]`` picks the
variant: ``"prefork"`` (``job.in_flight`` processes) or ``"threads"`` (one process,
``job.in_flight`` threads). The app reads the job only when Celery first needs its
configuration, so the runner can import this module for :func:`workers` without a job.
"""

from __future__ import annotations

import sys
from dataclasses import astuple
from functools import cache
from typing import Any

import requests
from bench.peers.common import (
    Item,
    Job,
    PublishFailed,
    due_posts_sync,
    publish_sync,
    record_sync,
    thread_conn,
    thread_session,
)
from celery import Celery, group

__all__ = ["SETUP", "app", "enqueue", "main", "publish", "workers"]

SETUP = False  # the Redis queue needs no setup: kombu declares it on first use
QUEUE = "peers:v1:celery"  # the run's Redis database is flushed, so no run id is needed

#: The longest retry wait: full jitter over 2, 4, ... 64 s for the 6 retries (Herald's
#: engine retries 6 times from 2 s too). Redis holds an ETA task unacknowledged while the
#: worker waits for it, so every wait must stay well under the visibility timeout.
RETRY_BACKOFF_MAX_S = 120
#: An unacknowledged message goes back to the queue after this long: it is how the posts of
#: a worker killed with -9 come back, so it matches Herald's 300 s claim lease.
VISIBILITY_TIMEOUT_S = 300


@cache
def _job() -> Job:
    return Job.from_env()


def _settings() -> dict[str, Any]:
    return {
        "broker_url": _job().redis_url,
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
        "task_default_queue": QUEUE,
        "task_ignore_result": True,
        # Acknowledge after the task ran, and requeue it if its process dies mid-task.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # With late acks, one reserved message per pool slot: a worker killed with -9 leaves
        # none but its running tasks to wait out the visibility timeout.
        "worker_prefetch_multiplier": 1,
        # Tasks cut off by a broker connection loss are redelivered anyway: stop them rather
        # than finish them alongside the redelivered copy (Celery's announced future default).
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Redis caveats: a cold shutdown gets this long to requeue unacknowledged messages,
        # ETA retries included even when no task is running.
        "worker_soft_shutdown_timeout": 10.0,
        "worker_enable_soft_shutdown_on_idle": True,
    }


# Named as a module so tasks keep their names when this file runs as __main__.
app = Celery("bench.peers.celery_peer")
app.add_defaults(_settings)  # a promise: evaluated when the configuration is first read


@app.task(
    autoretry_for=(PublishFailed, requests.RequestException),
    max_retries=6,
    retry_backoff=2,
    retry_backoff_max=RETRY_BACKOFF_MAX_S,
    retry_jitter=True,
)
def publish(key: str, page_id: str, token: str, text: str) -> None:
    job, it = _job(), Item(key, page_id, token, text)
    post_id = publish_sync(thread_session(), job, it)
    record_sync(thread_conn(job), job, it, post_id)


def _worker_options(job: Job) -> list[str]:
    pool = job.extra["pool"]
    if pool not in ("prefork", "threads"):
        raise ValueError(f"job.extra['pool'] is 'prefork' or 'threads', not {pool!r}")
    return [
        *("--pool", pool, "--concurrency", str(job.in_flight)),
        # No worker-to-worker chatter: one node, nothing to sync, nobody watching events.
        *("--without-heartbeat", "--without-gossip", "--without-mingle"),
        *("--loglevel", "WARNING"),
    ]


def workers(job: Job) -> list[list[str]]:
    """The argv of the one worker node: its pool runs ``job.in_flight`` tasks at a time."""
    argv = [sys.executable, "-m", "celery", "-A", "bench.peers.celery_peer", "worker"]
    return [argv + _worker_options(job)]


def enqueue(job: Job) -> None:
    due = due_posts_sync(job)
    # A group sends every message over one producer connection (Celery's advice for many).
    group(publish.s(*astuple(it)) for it in due).apply_async()


def main(argv: list[str]) -> None:
    match argv:
        case ["worker"]:
            app.worker_main(["worker", *_worker_options(_job())])
        case ["enqueue"]:
            enqueue(_job())
        case _:
            sys.exit("usage: python -m bench.peers.celery_peer worker|enqueue")


if __name__ == "__main__":
    main(sys.argv[1:])
