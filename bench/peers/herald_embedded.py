"""Herald itself under the peers' contract: one ``herald run`` on PostgreSQL or SQLite.

``setup`` opens Herald's store (its own schema beside the run's, or a SQLite file) and adds a
channel per Page with its token in a secrets file; ``enqueue`` takes the due posts from the
run's table and schedules them in Herald's store (what the API does for a user), and the
engine claims and publishes them. The simulator's addresses and the wide-open limits reach the
engine as its usual ``HERALD_*`` variables (``job.extra["herald_sections"]``).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from bench.peers.common import Job, due_posts

from herald.domain import Channel, Content, NewPost, Platform, Post, new_id, utcnow
from herald.service.credentials import SecretsFile
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore

SETUP = True


def _channel_id(page_id: str) -> str:
    return f"ch_{page_id}"


def database_url(job: Job) -> str:
    if job.extra["store"] == "sqlite":
        return f"sqlite:///{job.extra['sqlite_path']}"
    return f"{job.database_url}?schema={job.schema}_herald"


def workers(job: Job) -> list[list[str]]:
    return [[sys.executable, "-m", "herald.cli", "run"]]


def environment(job: Job) -> dict[str, str]:
    env = {"HERALD_LOG_LEVEL": "ERROR", "HERALD_DATABASE_URL": database_url(job)}
    if job.extra["store"] == "sqlite":
        # PostgreSQL wakes the engine when another process schedules posts (NOTIFY); SQLite
        # cannot, and the engine sees them at its idle recheck, 5 s by default. ``herald
        # serve`` wakes it in-process; here the enqueue is another process, so the recheck
        # is as short as the seed design's poll.
        env["HERALD_ENGINE__IDLE_RECHECK_S"] = "0.1"
    for section, values in job.extra["herald_sections"].items():
        for key, value in values.items():
            env[f"HERALD_{section.upper()}__{key.upper()}"] = str(value)
    return env


async def _store(job: Job) -> PostgresStore | SQLiteStore:
    if job.extra["store"] == "sqlite":
        sqlite = SQLiteStore(job.extra["sqlite_path"])
        await sqlite.open()
        return sqlite
    postgres = PostgresStore(job.database_url, schema=f"{job.schema}_herald", pool_size=2)
    await postgres.open()
    return postgres


async def setup(job: Job) -> None:
    secrets_file = SecretsFile(Path(job.extra["secrets_path"]))
    secrets_file.put_many({_channel_id(page): {"access_token": token} for page, token in job.pages})
    store = await _store(job)
    try:
        await store.add_channels(
            [
                Channel(
                    _channel_id(page),
                    Platform.FACEBOOK,
                    page,
                    f"Page {page}",
                    "UTC",
                    secrets_file.ref(_channel_id(page)),
                )
                for page, _ in job.pages
            ]
        )
    finally:
        await store.close()


async def enqueue(job: Job) -> None:
    due = await due_posts(job)
    store = await _store(job)
    at = utcnow() - timedelta(seconds=1)
    try:
        await store.add_posts(
            [
                NewPost.at(
                    Post(new_id("post"), Content(text=it.text)),
                    [(new_id("dlv"), _channel_id(it.page_id))],
                    at,
                )
                for it in due
            ]
        )
    finally:
        await store.close()


def main() -> None:
    job = Job.from_env()
    role = sys.argv[1]
    if role == "setup":
        asyncio.run(setup(job))
    elif role == "enqueue":
        asyncio.run(enqueue(job))
    else:
        raise SystemExit(f"herald_embedded: no role {role!r} (herald run is the worker)")


if __name__ == "__main__":
    main()
