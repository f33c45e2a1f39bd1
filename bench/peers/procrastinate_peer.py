"""procrastinate, the PostgreSQL job queue, doing the peers' job as its documentation recommends.

``enqueue`` defers one ``publish_post`` job per due post (``batch_defer_async``); one worker
process runs ``in_flight`` sub-workers (``concurrency``), each job publishing its item and
writing its outcome. The tasks and the app live in :mod:`bench.peers.procrastinate_app` (this
module runs as ``__main__``). Everything procrastinate keeps lives in the run's schema: its
connector sets ``search_path`` there ("Set the database PG schema"), ``setup`` applies
procrastinate's schema into it, and dropping the run's schema drops it all.

Settings, each from procrastinate's documentation:

- retries: a ``RetryStrategy`` on publish failures only, six of them (Herald's
  ``max_retries``) with exponential back-off; a failed outcome write is not retried, since
  the retry would publish the post again;
- a worker killed with jobs in ``doing`` leaves them stalled: the documented periodic
  ``retry_stalled_jobs`` task (heartbeat-based) puts them back, here every minute;
- the pool holds ``concurrency + 1`` connections ("Mind the size of your PostgreSQL pool":
  short jobs want one per sub-worker), and the LISTEN connection is one more: with the
  outcomes' pool, a worker may hold ``2 * in_flight + 2`` connections;
- the HTTP session and the outcomes' asyncpg pool, one of each per worker process, reach the
  jobs through the worker's ``additional_context`` ("Get more context for task execution");
- the worker's defaults are kept: ``listen_notify=True`` (one connection outside the pool
  LISTENs for new jobs), ``fetch_job_polling_interval`` 5 s as the fallback,
  ``delete_jobs="never"``, signal handlers installed (SIGTERM: fetch no more, wait for the
  running jobs, exit).

No ``lock`` or ``queueing_lock``: the docs offer them to run jobs in order and to skip jobs
that may be missed, not against publishing twice; a job's ``doing`` status is what keeps a
second sub-worker off it.

A worker fetches its jobs one query at a time, whatever its concurrency: jobs shorter than
a fetch (a simulator without latency) never overlap, and only longer ones fill the
sub-workers.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import asdict
from typing import Any

import aiohttp
import asyncpg
from bench.peers.common import Job, due_posts
from bench.peers.procrastinate_app import QUEUE, make_app, publish_post

__all__ = ["SETUP", "enqueue", "main", "setup", "worker", "workers"]

SETUP = True

_DEFER_BATCH = 1_000  # jobs per batch_defer_async call (one INSERT and transaction each)


def workers(job: Job) -> list[list[str]]:
    return [[sys.executable, "-m", "bench.peers.procrastinate_peer", "worker"]]


async def setup(job: Job) -> None:
    async with make_app(job, pool_size=1).open_async() as app:
        await app.schema_manager.apply_schema_async()


async def worker(job: Job) -> None:
    db = await asyncpg.create_pool(job.database_url, min_size=1, max_size=job.in_flight)
    try:
        connector = aiohttp.TCPConnector(limit=job.in_flight)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            make_app(job, pool_size=job.in_flight + 1).open_async() as app,
        ):
            context: dict[str, Any] = {"job": job, "http": http, "db": db}
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=job.in_flight,
                name="procrastinate-peer",
                additional_context=context,
            )
    finally:
        await db.close()


async def enqueue(job: Job) -> None:
    due = await due_posts(job)
    async with make_app(job, pool_size=1).open_async():
        for start in range(0, len(due), _DEFER_BATCH):
            batch = due[start : start + _DEFER_BATCH]
            await publish_post.batch_defer_async(*(asdict(it) for it in batch))


_ROLES = {"setup": setup, "worker": worker, "enqueue": enqueue}


def main() -> None:
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role not in _ROLES:
        raise SystemExit(f"usage: python -m bench.peers.procrastinate_peer {'|'.join(_ROLES)}")
    asyncio.run(_ROLES[role](Job.from_env()))


if __name__ == "__main__":
    main()
