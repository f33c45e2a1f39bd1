"""The job every system does, and the contract between a system's module and the runner.

**The job.** The runner writes ``count`` posts, all due now, to the table ``{schema}.posts``
(:data:`POSTS_DDL`); the system takes the due posts from it (:func:`due_posts_sync` /
:func:`due_posts`, as a user's scheduler would) and publishes each: Facebook Page posts
spread over the run's Pages, each published with one
``POST {graph}/{page}/feed`` (Bearer page token, JSON ``{"message": text}``) to the simulator,
at most ``in_flight`` requests in flight in all, and each outcome written to PostgreSQL
(:func:`record_sync` / :func:`record_async`: one row per item, ``attempts`` counting every
write). An item whose request failed is retried by the system's own retry mechanism.

**A system's module** (``bench/peers/<name>.py``) runs as ``python -m bench.peers.<name>
worker|enqueue`` with the job as JSON in ``PEER_JOB`` (:meth:`Job.from_env`):

- ``worker``: consume and publish until SIGTERM (the runner starts each process of
  ``workers(job)`` in a session of its own and counts the CPU of the whole session);
- ``enqueue``: read the due posts (items ``job.first .. job.first + job.count - 1``), submit
  each to the system's queue, and exit; its CPU counts as the system's, as Herald's
  dispatcher's does;
- ``setup`` (optional, declared by ``SETUP = True``): create the system's own tables or
  queues, once per run, before the workers start.

and declares ``workers(job)``, the argv of each worker process (the runner adds the
environment: ``PEER_JOB``, and ``environment(job)`` if the module has one). The runner imports
the module without ``PEER_JOB`` set. Systems use the run's Redis (``job.redis_url``, a
database flushed before each run) and the run's PostgreSQL schema (``job.schema``) for their
own tables, if they need any.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "OPEN_LIMITS",
    "OUTCOMES_DDL",
    "POSTS_DDL",
    "Item",
    "Job",
    "due_posts",
    "due_posts_sync",
    "item",
    "publish_async",
    "publish_sync",
    "record_async",
    "record_sync",
    "thread_conn",
    "thread_session",
]


#: Herald's settings (and so the simulator's quotas) with limits that never bind: the burst
#: scenario measures throughput, not limits.
OPEN_LIMITS = {"facebook": {"app_daily_active_users": 100_000, "page_engaged_users": 1000}}


@dataclass(frozen=True)
class Job:
    run_id: str  # unique per run: every text carries it (the simulator refuses a repeated text)
    graph_url: str  # the simulator's Graph base, e.g. http://127.0.0.1:PORT/v23.0
    pages: list[tuple[str, str]]  # (Page id, Page access token)
    database_url: str  # PostgreSQL (postgresql://...), the outcomes in ``schema``
    schema: str
    redis_url: str  # redis://host:port/db, flushed before the run
    first: int = 0
    count: int = 0
    in_flight: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    def to_env(self) -> dict[str, str]:
        return {"PEER_JOB": json.dumps(asdict(self))}

    @classmethod
    def from_env(cls) -> Job:
        raw = json.loads(os.environ["PEER_JOB"])
        raw["pages"] = [tuple(p) for p in raw["pages"]]
        return cls(**raw)


@dataclass(frozen=True)
class Item:
    key: str  # unique per run and item: the outcome row's key
    page_id: str
    token: str
    text: str


def item(job: Job, n: int) -> Item:
    """Item ``n`` of the run, the same for every system (Page ``n % pages``)."""
    page, token = job.pages[n % len(job.pages)]
    return Item(f"{job.run_id}:{n}", page, token, f"Peer bench post {job.run_id} {n}")


def _request(job: Job, it: Item) -> tuple[str, dict[str, str], dict[str, str]]:
    url = f"{job.graph_url}/{it.page_id}/feed"
    headers = {"Authorization": f"Bearer {it.token}"}
    return url, headers, {"message": it.text}


class PublishFailed(Exception):
    """The platform did not confirm the post: the system's retry decides what next."""


def publish_sync(session: Any, job: Job, it: Item) -> str:
    """Publish ``it`` with a ``requests.Session``; the post's id, or PublishFailed."""
    url, headers, body = _request(job, it)
    response = session.post(url, headers=headers, json=body, timeout=30)
    if response.status_code != 200:
        raise PublishFailed(f"{response.status_code}: {response.text[:200]}")
    return str(response.json()["id"])


async def publish_async(session: Any, job: Job, it: Item) -> str:
    """Publish ``it`` with an ``aiohttp.ClientSession``; the post's id, or PublishFailed."""
    url, headers, body = _request(job, it)
    async with session.post(url, headers=headers, json=body) as response:
        if response.status != 200:
            raise PublishFailed(f"{response.status}: {(await response.text())[:200]}")
        return str((await response.json())["id"])


POSTS_DDL = """
CREATE TABLE {schema}.posts (
    n integer PRIMARY KEY,
    key text NOT NULL,
    page_id text NOT NULL,
    token text NOT NULL,
    text text NOT NULL,
    due_at timestamptz NOT NULL
)
"""

_DUE = (
    "SELECT key, page_id, token, text FROM {schema}.posts"
    " WHERE n >= {first} AND n < {end} AND due_at <= now() ORDER BY n"
)


def _due(job: Job) -> str:
    return _DUE.format(schema=job.schema, first=job.first, end=job.first + job.count)


def due_posts_sync(job: Job) -> list[Item]:
    """The due posts of this enqueue, on a psycopg (3) connection of their own."""
    import psycopg  # noqa: PLC0415 - the peers group's, not Herald's

    with psycopg.connect(job.database_url) as conn:
        return [Item(*row) for row in conn.execute(_due(job)).fetchall()]


async def due_posts(job: Job) -> list[Item]:
    """The due posts of this enqueue, on an asyncpg connection of their own."""
    import asyncpg  # noqa: PLC0415 - the sync peers' processes never load it

    conn = await asyncpg.connect(job.database_url)
    try:
        return [Item(*row) for row in await conn.fetch(_due(job))]
    finally:
        await conn.close()


class _PerThread(threading.local):
    """A worker thread's HTTP session and database connection (``requests.Session`` is not
    documented as thread-safe, and threads sharing one psycopg connection queue behind it)."""

    session: Any = None
    conn: Any = None


_local = _PerThread()


def thread_session() -> Any:
    """This thread's ``requests.Session``."""
    if _local.session is None:
        import requests  # noqa: PLC0415 - the peers group's, not Herald's

        _local.session = requests.Session()
    return _local.session


def thread_conn(job: Job) -> Any:
    """This thread's psycopg connection in autocommit mode; one the server dropped (closed)
    is opened again, for the retry."""
    if _local.conn is None or _local.conn.closed:
        import psycopg  # noqa: PLC0415

        _local.conn = psycopg.connect(job.database_url, autocommit=True)
    return _local.conn


OUTCOMES_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.outcomes (
    key text PRIMARY KEY,
    post_id text NOT NULL,
    attempts integer NOT NULL DEFAULT 1,
    finished_at timestamptz NOT NULL DEFAULT now()
)
"""

_RECORD = """
INSERT INTO {schema}.outcomes (key, post_id) VALUES ({key}, {post_id})
ON CONFLICT (key) DO UPDATE SET attempts = outcomes.attempts + 1, finished_at = now()
"""


@functools.cache
def _record(schema: str, style: str) -> str:
    """The outcome's statement for ``schema``, written once per process, not once a task (the
    peers' CPU is measured: a helper of ours must not add to it)."""
    key, post_id = ("%s", "%s") if style == "psycopg" else ("$1", "$2")
    return _RECORD.format(schema=schema, key=key, post_id=post_id)


def record_sync(conn: Any, job: Job, it: Item, post_id: str) -> None:
    """Write the outcome with a psycopg (3) connection in autocommit mode."""
    conn.execute(_record(job.schema, "psycopg"), (it.key, post_id))


async def record_async(conn: Any, job: Job, it: Item, post_id: str) -> None:
    """Write the outcome with an asyncpg connection (or pool)."""
    await conn.execute(_record(job.schema, "asyncpg"), it.key, post_id)
