"""The SQLite store's CSV import jobs (:class:`herald.types.ImportJobs`). Mixed into
:class:`herald.stores.sqlite.SQLiteStore`.

Each call is one unit of work on the writer connection (or a read on the reader), so a job's
batches interleave with every other write instead of holding the file's one writer."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from herald.domain import ImportJob, NewPost, Post, utcnow
from herald.errors import InvalidInput, NotFound
from herald.stores.contract import lost_import
from herald.stores.rows import SQLITE as decode
from herald.stores.rows import import_params, micros, post_json
from herald.stores.sqlite_conn import ThreadedConnection

__all__ = ["SQLiteImports"]

#: The cursor of a listing's first page: before every instant a job can have.
_FIRST = datetime(1, 1, 1, tzinfo=UTC)


class SQLiteImports:
    _q: Mapping[str, str]
    _writer: ThreadedConnection
    _reader: ThreadedConnection

    async def add_import(self, job: ImportJob, *, max_running: int) -> bool:
        values = import_params(job, micros)

        def add(conn: sqlite3.Connection) -> bool:
            # BEGIN IMMEDIATE: no other process writes between the count and the insert.
            found = conn.execute(self._q["running_imports"], values).fetchone()
            if found["running"] >= max_running:
                return False
            try:
                conn.execute(self._q["insert_import"], values)
            except sqlite3.IntegrityError as exc:
                raise InvalidInput("an import with this id exists, or no such workspace") from exc
            return True

        return await self._writer.transaction(add)

    async def running_imports(self, workspace_id: str) -> int:
        sql, params = self._q["running_imports"], {"workspace_id": workspace_id}
        row = await self._reader.run(lambda c: c.execute(sql, params).fetchone())
        return int(row["running"])

    async def get_import(self, import_id: str) -> ImportJob:
        sql = self._q["get_import"]
        row = await self._reader.run(lambda c: c.execute(sql, {"id": import_id}).fetchone())
        if row is None:
            raise NotFound("import", import_id)
        return decode.import_job(row)

    async def list_imports(
        self, workspace_id: str, *, after: tuple[datetime, str] | None = None, limit: int = 50
    ) -> list[ImportJob]:
        at, after_id = after or (_FIRST, "")
        params = {
            "workspace_id": workspace_id,
            "after_at": micros(at),
            "after_id": after_id,
            "limit": limit,
        }
        sql = self._q["list_imports"]
        found = await self._reader.run(lambda c: c.execute(sql, params).fetchall())
        return [decode.import_job(r) for r in found]

    async def purge_imports(self, before: datetime, *, limit: int) -> int:
        params = {"before": micros(before), "limit": limit}

        def purge(conn: sqlite3.Connection) -> int:
            lines = conn.execute(self._q["purge_import_lines"], params).rowcount
            return int(lines + conn.execute(self._q["purge_imports"], params).rowcount)

        return await self._writer.transaction(purge)

    async def save_import(self, job: ImportJob) -> None:
        values = import_params(job, micros, saved=True)
        await self._writer.transaction(lambda conn: self._save(conn, values))

    def _save(self, conn: sqlite3.Connection, values: Mapping[str, Any]) -> None:
        if conn.execute(self._q["save_import"], values).rowcount == 0:
            raise lost_import(values["id"], values["runner"])

    def _guard(self, conn: sqlite3.Connection, import_id: str, runner: str) -> None:
        params = {"id": import_id, "runner": runner, "now": micros(utcnow())}
        if conn.execute(self._q["touch_import"], params).rowcount == 0:
            raise lost_import(import_id, runner)

    async def extend_import_leases(
        self, runner: str, import_ids: Sequence[str], lease_until: datetime
    ) -> int:
        ids = json.dumps(list(import_ids))
        params = {"runner": runner, "ids": ids, "lease_until": micros(lease_until)}
        sql = self._q["extend_import_leases"]
        return await self._writer.transaction(lambda c: c.execute(sql, params).rowcount)

    async def take_over_imports(
        self, runner: str, *, now: datetime, lease_until: datetime
    ) -> list[ImportJob]:
        params = {"runner": runner, "now": micros(now), "lease_until": micros(lease_until)}
        sql = self._q["take_over_imports"]
        found = await self._writer.transaction(lambda c: c.execute(sql, params).fetchall())
        return sorted(map(decode.import_job, found), key=lambda j: (j.created_at, j.id))

    async def add_import_posts(self, job: ImportJob, posts: Sequence[tuple[int, NewPost]]) -> None:
        values = import_params(job, micros, saved=True)
        now = micros(utcnow())
        post_rows = [
            (p.id, *post_json(p), micros(p.created_at), p.workspace_id)
            for p in (new.post for _, new in posts)
        ]
        # Held: no next_attempt_at (insert_delivery's fourth value), so no claim picks them.
        delivery_rows = [
            (d.id, new.post.id, micros(d.due_at), None, now, d.channel_id)
            for _, new in posts
            for d in new.deliveries
        ]
        line_rows = [(job.id, line, new.post.id) for line, new in posts]

        def add(conn: sqlite3.Connection) -> None:
            self._save(conn, values)  # the guard first: a lost job stores nothing
            # executemany: the loop over rows runs in C, so this thread holds the GIL (which
            # the event loop's thread needs) as little as it can while it writes.
            try:
                conn.executemany(self._q["insert_post"], post_rows)
                conn.executemany(self._q["insert_import_post"], line_rows)
                inserted = conn.executemany(self._q["insert_delivery"], delivery_rows).rowcount
            except sqlite3.IntegrityError as exc:
                raise InvalidInput("a post of this import, or with this id, exists") from exc
            if inserted != len(delivery_rows):
                raise NotFound("channel", missing_channel(conn, delivery_rows))

        await self._writer.transaction(add)

    async def release_import(
        self, import_id: str, runner: str, *, after_line: int, limit: int
    ) -> int | None:
        now = micros(utcnow())

        def release(conn: sqlite3.Connection) -> int | None:
            self._guard(conn, import_id, runner)
            batch = self._lines(conn, import_id, after_line, limit)
            conn.executemany(
                self._q["release_held_deliveries"],
                [{"post_id": post_id, "now": now} for _, post_id in batch],
            )
            return batch[-1][0] if batch else None

        return await self._writer.transaction(release)

    async def discard_import(
        self, import_id: str, runner: str, *, after_line: int, limit: int
    ) -> int | None:
        def discard(conn: sqlite3.Connection) -> int | None:
            self._guard(conn, import_id, runner)
            batch = self._lines(conn, import_id, after_line, limit)
            posts = [{"post_id": p} for _, p in batch]
            conn.executemany(self._q["delete_import_attempts"], posts)
            conn.executemany(self._q["delete_import_deliveries"], posts)
            lines = [{"import_id": import_id, "line": line} for line, _ in batch]
            conn.executemany(self._q["delete_import_line"], lines)
            conn.executemany(self._q["delete_import_post"], posts)
            return batch[-1][0] if batch else None

        return await self._writer.transaction(discard)

    def _lines(
        self, conn: sqlite3.Connection, import_id: str, after_line: int, limit: int
    ) -> list[tuple[int, str]]:
        params = {"id": import_id, "after_line": after_line, "limit": limit}
        return [(r["line"], r["post_id"]) for r in conn.execute(self._q["import_lines"], params)]

    async def list_import_posts(
        self, import_id: str, *, after_line: int = 0, limit: int = 50
    ) -> list[tuple[int, Post]]:
        params = {"id": import_id, "after_line": after_line, "limit": limit}
        sql = self._q["list_import_posts"]
        found = await self._reader.run(lambda c: c.execute(sql, params).fetchall())
        return [(r["line"], decode.post(r)) for r in found]


def missing_channel(conn: sqlite3.Connection, delivery_rows: Sequence[tuple[Any, ...]]) -> str:
    for row in delivery_rows:
        channel_id = row[-1]
        if conn.execute("SELECT 1 FROM channels WHERE id = ?", (channel_id,)).fetchone() is None:
            return str(channel_id)
    return "?"
