"""arq: asyncio jobs in Redis, written the way its documentation says to.

``enqueue`` takes the due posts from the run's table and enqueues one arq job per post, the
post's key as the job id (arq refuses a second job with an id it already holds, its documented
way to avoid enqueuing twice). One worker process runs ``in_flight`` jobs at a time: each
publishes its post and writes the outcome, with the HTTP session and the PostgreSQL pool that
``on_startup`` puts in the worker's context.

No-loss settings, from arq's documentation: a job stays in the queue until it finishes, so a job
whose worker dies is run again once its in-progress key expires (``job_timeout`` + 10 s: arq's
"pessimistic execution", at least once); a job cancelled by a shutdown is run again
(``retry_jobs``); a failed request raises :class:`arq.Retry` with a growing delay, up to
``max_tries`` runs. ``poll_delay`` is arq's 0.5 s unless ``job.extra["poll_delay"]`` says
otherwise (the ``arq-fastpoll`` variant).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import aiohttp
import asyncpg
from arq import Retry, create_pool, run_worker
from arq.connections import RedisSettings
from bench.peers.common import Item, Job, PublishFailed, due_posts, publish_async, record_async

SETUP = False
_MAX_TRIES = 10  # runs of one job, the first included
_RETRY_STEP_S = 1.0  # a failed request is tried again after job_try x this
_HTTP_TIMEOUT_S = 30.0  # one request to the platform, as Herald's connectors allow
_CONNECT_TIMEOUT_S = 5.0
_JOB_TIMEOUT_S = 60  # above the request's timeout and the outcome's write
_ENQUEUE_CHUNK = 50  # enqueue_job calls at once: each holds a connection (WATCH, MULTI)


async def publish(ctx: dict[str, Any], key: str, page_id: str, token: str, text: str) -> str:
    """The job: publish one post and write its outcome; a failed request is retried."""
    job: Job = ctx["job"]
    it = Item(key, page_id, token, text)
    try:
        post_id = await publish_async(ctx["session"], job, it)
    except (PublishFailed, aiohttp.ClientError, TimeoutError) as exc:
        raise Retry(defer=ctx["job_try"] * _RETRY_STEP_S) from exc
    await record_async(ctx["db"], job, it, post_id)
    return post_id


async def startup(ctx: dict[str, Any]) -> None:
    job: Job = ctx["job"]
    timeout = aiohttp.ClientTimeout(total=_HTTP_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S)
    ctx["session"] = aiohttp.ClientSession(timeout=timeout)
    ctx["db"] = await asyncpg.create_pool(job.database_url, min_size=1, max_size=job.in_flight)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["session"].close()
    await ctx["db"].close()


class WorkerSettings:
    """The worker's fixed settings; :func:`run_settings` adds the run's."""

    functions = [publish]
    on_startup = startup
    on_shutdown = shutdown
    max_tries = _MAX_TRIES
    retry_jobs = True
    job_timeout = _JOB_TIMEOUT_S


def run_settings(job: Job) -> dict[str, Any]:
    """What arq takes from the run: its Redis, the in-flight budget and the poll delay."""
    return {
        "redis_settings": RedisSettings.from_dsn(job.redis_url),
        "max_jobs": job.in_flight,
        "poll_delay": float(job.extra.get("poll_delay", 0.5)),
        "ctx": {"job": job},
    }


def workers(job: Job) -> list[list[str]]:
    return [[sys.executable, "-m", "bench.peers.arq_peer", "worker"]]


async def enqueue(job: Job) -> None:
    due = await due_posts(job)
    redis = await create_pool(RedisSettings.from_dsn(job.redis_url))
    try:
        for start in range(0, len(due), _ENQUEUE_CHUNK):
            chunk = due[start : start + _ENQUEUE_CHUNK]
            await asyncio.gather(
                *(
                    redis.enqueue_job(
                        "publish", it.key, it.page_id, it.token, it.text, _job_id=it.key
                    )
                    for it in chunk
                )
            )
    finally:
        await redis.aclose()


def main() -> None:
    job = Job.from_env()
    role = sys.argv[1]
    if role == "worker":
        # Warnings and failures only, as Herald runs in the benchmark: arq logs two lines a job
        # at INFO, with the job's arguments.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
        run_worker(WorkerSettings, **run_settings(job))  # stops on SIGTERM, jobs re-queued
    elif role == "enqueue":
        asyncio.run(enqueue(job))
    else:
        raise SystemExit(f"arq_peer: no role {role!r}")


if __name__ == "__main__":
    main()
