"""The procrastinate app of the procrastinate peer: its tasks, and the app on a run's schema.

A module of its own, as procrastinate's docs advise ("Find a correct place for your app"):
the peer's entry point runs as ``__main__``, where an app or blueprint would be defined twice.
The tasks are declared on a :class:`~procrastinate.Blueprint` so that importing this module
opens nothing; :func:`make_app` binds them to an app on the run's database.
"""

from __future__ import annotations

import aiohttp
from bench.peers.common import Item, Job, PublishFailed, publish_async, record_async
from procrastinate import App, Blueprint, JobContext, PsycopgConnector, RetryStrategy

__all__ = ["QUEUE", "make_app", "publish_post", "retry_stalled_jobs", "tasks"]

QUEUE = "peer_posts_v1"
_NAMESPACE = "peer"
_MAX_RETRIES = 6  # retries after the first attempt (procrastinate's ``max_attempts``)
_RETRY_BASE_S = 2  # exponential back-off: 2, 4, 8 ... seconds
_STALLED_CRON = "* * * * *"  # every minute; the docs' example says every ten

tasks = Blueprint()


@tasks.task(
    name="publish_post",
    queue=QUEUE,
    pass_context=True,
    retry=RetryStrategy(
        max_attempts=_MAX_RETRIES,
        exponential_wait=_RETRY_BASE_S,
        retry_exceptions={PublishFailed, aiohttp.ClientError, TimeoutError},
    ),
)
async def publish_post(context: JobContext, **item: str) -> None:
    """Publish one item and write its outcome, with the worker's session and pool."""
    job: Job = context.additional_context["job"]
    it = Item(**item)
    post_id = await publish_async(context.additional_context["http"], job, it)
    await record_async(context.additional_context["db"], job, it, post_id)


@tasks.periodic(cron=_STALLED_CRON)
@tasks.task(
    name="retry_stalled_jobs", queue=QUEUE, queueing_lock="retry_stalled_jobs", pass_context=True
)
async def retry_stalled_jobs(context: JobContext, timestamp: int) -> None:
    """Put back the jobs of workers whose heartbeat stopped (the docs' task)."""
    manager = context.app.job_manager
    for stalled in await manager.get_stalled_jobs():
        await manager.retry_job(stalled)


def make_app(job: Job, *, pool_size: int) -> App:
    """The app on the run's database, procrastinate's tables in the run's schema (the docs'
    "Set the database PG schema"); a pool of ``pool_size`` connections."""
    connector = PsycopgConnector(
        conninfo=job.database_url,
        kwargs={"options": f"-c search_path={job.schema}"},
        min_size=pool_size,
        max_size=pool_size,
    )
    app = App(connector=connector)
    app.add_tasks_from(tasks, namespace=_NAMESPACE)
    return app
