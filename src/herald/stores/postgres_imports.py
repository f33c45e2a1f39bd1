"""The PostgreSQL store's CSV import jobs (:class:`herald.types.ImportJobs`). Mixed into
:class:`herald.stores.postgres.PostgresStore`.

Every write for a job starts with its guard (``save_import`` or ``touch_import``), which locks
the job's row until the transaction ends: a take-over by another process waits for the write
in flight, and a write after a take-over finds the job held by someone else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from herald.domain import ImportJob, NewPost, Post, utcnow
from herald.errors import NotFound
from herald.stores.contract import lost_import
from herald.stores.postgres_conn import Connection, Database, Unchanged
from herald.stores.rows import POSTGRES as decode
from herald.stores.rows import import_params, post_json

__all__ = ["PostgresImports"]

#: The cursor of a listing's first page: before every instant a job can have.
_FIRST = datetime(1, 1, 1, tzinfo=UTC)


def _as_is(at: datetime | None) -> datetime | None:
    return at


class PostgresImports:
    _db: Database
    #: PostgresStore's: wakes the dispatchers listening for due work, at commit.
    _notify_due: Callable[[Connection, datetime | None], Awaitable[None]]

    async def add_import(self, job: ImportJob, *, max_running: int) -> bool:
        values = import_params(job, _as_is)
        added = False
        async with self._db.transaction("an import with this id exists") as conn:
            if await conn.fetchrow(self._db.q["lock_workspace"], workspace_id=job.workspace_id):
                running = await conn.fetchval(
                    self._db.q["running_imports"], workspace_id=job.workspace_id
                )
                if running >= max_running:
                    raise Unchanged  # nothing added: a key claim's mark is not kept either
            # No such workspace: the insert's foreign key refuses it.
            await conn.execute(self._db.q["insert_import"], **values)
            added = True
        return added

    async def running_imports(self, workspace_id: str) -> int:
        return int(await self._db.fetchval("running_imports", workspace_id=workspace_id))

    async def get_import(self, import_id: str) -> ImportJob:
        row = await self._db.fetchrow("get_import", id=import_id)
        if row is None:
            raise NotFound("import", import_id)
        return decode.import_job(row)

    async def list_imports(
        self, workspace_id: str, *, after: tuple[datetime, str] | None = None, limit: int = 50
    ) -> list[ImportJob]:
        at, after_id = after or (_FIRST, "")
        found = await self._db.fetch(
            "list_imports", workspace_id=workspace_id, after_at=at, after_id=after_id, limit=limit
        )
        return [decode.import_job(r) for r in found]

    async def purge_imports(self, before: datetime, *, limit: int) -> int:
        async with self._db.transaction() as conn:
            lines = await conn.execute(self._db.q["purge_import_lines"], before=before, limit=limit)
            jobs = await conn.execute(self._db.q["purge_imports"], before=before, limit=limit)
        return lines + jobs

    async def save_import(self, job: ImportJob) -> None:
        async with self._db.transaction() as conn:
            await self._save(conn, job)

    async def _save(self, conn: Connection, job: ImportJob) -> None:
        values = import_params(job, _as_is, saved=True)
        if await conn.execute(self._db.q["save_import"], **values) == 0:
            raise lost_import(job.id, job.runner)

    async def _guard(self, conn: Connection, import_id: str, runner: str) -> None:
        q = self._db.q["touch_import"]
        if await conn.execute(q, id=import_id, runner=runner, now=utcnow()) == 0:
            raise lost_import(import_id, runner)

    async def extend_import_leases(
        self, runner: str, import_ids: Sequence[str], lease_until: datetime
    ) -> int:
        return await self._db.execute(
            "extend_import_leases", runner=runner, ids=list(import_ids), lease_until=lease_until
        )

    async def take_over_imports(
        self, runner: str, *, now: datetime, lease_until: datetime
    ) -> list[ImportJob]:
        found = await self._db.fetch(
            "take_over_imports", runner=runner, now=now, lease_until=lease_until
        )
        return sorted(map(decode.import_job, found), key=lambda j: (j.created_at, j.id))

    async def add_import_posts(self, job: ImportJob, posts: Sequence[tuple[int, NewPost]]) -> None:
        news = [new for _, new in posts]
        targets = [(d, new.post.id) for new in news for d in new.deliveries]
        contents = [post_json(new.post) for new in news]
        q = self._db.q
        async with self._db.transaction("a post of this import, or with this id, exists") as conn:
            await self._save(conn, job)  # the guard first: a lost job stores nothing
            await conn.execute(
                q["insert_posts"],
                ids=[new.post.id for new in news],
                contents=[content for content, _ in contents],
                overrides=[overrides for _, overrides in contents],
                created_at=[new.post.created_at for new in news],
                workspace_ids=[new.post.workspace_id for new in news],
            )
            await conn.execute(
                q["insert_import_posts"],
                import_id=job.id,
                lines=[line for line, _ in posts],
                post_ids=[new.post.id for new in news],
            )
            inserted = await conn.execute(
                q["insert_held_deliveries"],
                ids=[d.id for d, _ in targets],
                post_ids=[post_id for _, post_id in targets],
                channel_ids=[d.channel_id for d, _ in targets],
                due_at=[d.due_at for d, _ in targets],
                now=utcnow(),
            )
            if inserted != len(targets):
                raise NotFound("channel", await self._missing_channel(conn, targets))

    async def _missing_channel(self, conn: Connection, targets: Sequence[tuple[Any, str]]) -> str:
        """The first channel of ``targets`` (delivery, post id) that does not exist."""
        wanted = [d.channel_id for d, _ in targets]
        existing = {r["id"] for r in await conn.fetch(self._db.q["existing_channels"], ids=wanted)}
        return next((c for c in wanted if c not in existing), "?")

    async def release_import(
        self, import_id: str, runner: str, *, after_line: int, limit: int
    ) -> int | None:
        async with self._db.transaction() as conn:
            await self._guard(conn, import_id, runner)
            batch = await self._lines(conn, import_id, after_line, limit)
            first_due = await conn.fetchval(
                self._db.q["release_held_deliveries"],
                post_ids=[post_id for _, post_id in batch],
                now=utcnow(),
            )
            if first_due is not None:
                await self._notify_due(conn, first_due)  # other processes' dispatchers
        return batch[-1][0] if batch else None

    async def discard_import(
        self, import_id: str, runner: str, *, after_line: int, limit: int
    ) -> int | None:
        q = self._db.q
        async with self._db.transaction() as conn:
            await self._guard(conn, import_id, runner)
            batch = await self._lines(conn, import_id, after_line, limit)
            post_ids = [post_id for _, post_id in batch]
            await conn.execute(q["delete_import_attempts"], post_ids=post_ids)
            await conn.execute(q["delete_import_deliveries"], post_ids=post_ids)
            lines = [line for line, _ in batch]
            await conn.execute(q["delete_import_lines"], import_id=import_id, lines=lines)
            await conn.execute(q["delete_import_posts"], post_ids=post_ids)
        return batch[-1][0] if batch else None

    async def _lines(
        self, conn: Connection, import_id: str, after_line: int, limit: int
    ) -> list[tuple[int, str]]:
        found = await conn.fetch(
            self._db.q["import_lines"], id=import_id, after_line=after_line, limit=limit
        )
        return [(r["line"], r["post_id"]) for r in found]

    async def list_import_posts(
        self, import_id: str, *, after_line: int = 0, limit: int = 50
    ) -> list[tuple[int, Post]]:
        found = await self._db.fetch(
            "list_import_posts", id=import_id, after_line=after_line, limit=limit
        )
        return [(r["line"], decode.post(r)) for r in found]
