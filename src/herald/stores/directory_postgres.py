"""The global directory on PostgreSQL: the database every API node of every region reads to
find where a key's workspace lives (``directory_url``).

Two small tables, ``directory_workspaces`` and ``directory_keys``, created on open if missing
(named apart from a store's, so a small deployment may keep them in one region's database).
They hold ids, key prefixes and hashes and regions: a workspace's name, channels, posts and
credentials stay in its region's database alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from herald.constants import MIGRATION_LOCK_PREFIX, MOVE_LOCK_PREFIX
from herald.domain import ApiKey, KeyHome, WorkspaceHome
from herald.errors import Conflict, NotFound
from herald.stores.directory_common import busy_move, check_move
from herald.stores.postgres_conn import Database

__all__ = ["PostgresDirectory"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS directory_workspaces (
    workspace_id text PRIMARY KEY,
    region text NOT NULL,
    moving_to text,
    created_at timestamptz NOT NULL,
    CHECK (moving_to IS NULL OR moving_to <> region)
);
CREATE TABLE IF NOT EXISTS directory_keys (
    prefix text PRIMARY KEY,
    key_id text NOT NULL UNIQUE,
    workspace_id text NOT NULL REFERENCES directory_workspaces (workspace_id) ON DELETE CASCADE,
    digest text NOT NULL,
    revoked boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS directory_keys_workspace ON directory_keys (workspace_id);
"""

_KEY = """
SELECT k.prefix, k.key_id, k.workspace_id, w.region, k.digest, k.revoked, w.moving_to
FROM directory_keys k JOIN directory_workspaces w USING (workspace_id)
"""


class PostgresDirectory:
    def __init__(self, url: str, *, pool_size: int = 4, command_timeout_s: float = 10.0) -> None:
        self._db = Database(
            url,
            schema=None,
            pool_size=pool_size,
            command_timeout_s=command_timeout_s,
            application_name="herald-directory",
            migrate=False,
        )

    async def open(self) -> None:
        await self._db.open()
        try:
            async with self._db.connection() as conn:
                raw = conn.raw
                schema = self._db.schema or await raw.fetchval("SELECT current_schema()")
                self._db.schema = schema
                lock = f"{MIGRATION_LOCK_PREFIX}directory:{schema}"
                # Several nodes may start at once: they take turns creating the tables.
                await raw.execute("SELECT pg_advisory_lock(hashtext($1))", lock)
                try:
                    await raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                    async with raw.transaction():
                        await raw.execute(f'SET LOCAL search_path TO "{schema}"')
                        await raw.execute(_SCHEMA)
                finally:
                    await raw.execute("SELECT pg_advisory_unlock(hashtext($1))", lock)
        except BaseException:
            await self._db.close()
            raise

    async def close(self) -> None:
        await self._db.close()

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._db.connection() as conn:
            return list(await conn.raw.fetch(sql, *args))

    async def _write(self, sql: str, *args: Any, conflict: str = "") -> str:
        conflict = conflict or "conflicts with the directory"
        async with self._db.transaction(conflict, marks=False) as conn:
            return str(await conn.raw.execute(sql, *args))

    async def add_workspace(self, home: WorkspaceHome) -> None:
        status = await self._write(
            "INSERT INTO directory_workspaces (workspace_id, region, created_at) "
            "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            home.workspace_id,
            home.region,
            home.created_at,
        )
        if status.endswith(" 0"):
            raise Conflict(f"workspace {home.workspace_id!r} is already in the directory")

    async def workspace(self, workspace_id: str) -> WorkspaceHome | None:
        rows = await self._fetch(
            "SELECT workspace_id, region, created_at, moving_to FROM directory_workspaces "
            "WHERE workspace_id = $1",
            workspace_id,
        )
        return _home(rows[0]) if rows else None

    async def workspaces(self, region: str | None = None) -> list[WorkspaceHome]:
        rows = await self._fetch(
            "SELECT workspace_id, region, created_at, moving_to FROM directory_workspaces "
            "WHERE $1::text IS NULL OR region = $1 ORDER BY created_at, workspace_id",
            region,
        )
        return [_home(row) for row in rows]

    async def remove_workspace(self, workspace_id: str) -> None:
        # Its keys go with it (ON DELETE CASCADE), in the same statement.
        await self._write("DELETE FROM directory_workspaces WHERE workspace_id = $1", workspace_id)

    async def add_key(self, key: ApiKey, digest: str) -> None:
        status = await self._write(
            "INSERT INTO directory_keys (prefix, key_id, workspace_id, digest, revoked) "
            "SELECT $1, $2, workspace_id, $4, $5 FROM directory_workspaces "
            "WHERE workspace_id = $3 ON CONFLICT DO NOTHING",
            key.prefix,
            key.id,
            key.workspace_id,
            digest,
            key.revoked_at is not None,
        )
        if status.endswith(" 0"):
            if await self.workspace(key.workspace_id) is None:
                raise NotFound("workspace", key.workspace_id)
            raise Conflict(f"key prefix {key.prefix!r} is already in the directory")

    async def key(self, prefix: str) -> KeyHome | None:
        rows = await self._fetch(_KEY + "WHERE k.prefix = $1", prefix)
        return _key(rows[0]) if rows else None

    async def key_by_id(self, key_id: str) -> KeyHome | None:
        rows = await self._fetch(_KEY + "WHERE k.key_id = $1", key_id)
        return _key(rows[0]) if rows else None

    async def revoke_key(self, key_id: str) -> None:
        await self._write("UPDATE directory_keys SET revoked = true WHERE key_id = $1", key_id)

    @asynccontextmanager
    async def move_lock(self, workspace_id: str) -> AsyncIterator[None]:
        # A session lock on a connection kept for the whole run: it goes with the session
        # if the run dies, so a crashed run never blocks the next one.
        key = f"{MOVE_LOCK_PREFIX}{workspace_id}"
        async with self._db.connection() as conn:
            taken = await conn.raw.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key)
            if not taken:
                raise Conflict(busy_move(workspace_id))
            try:
                yield
            finally:
                await conn.raw.execute("SELECT pg_advisory_unlock(hashtext($1))", key)

    async def begin_move(self, workspace_id: str, to: str) -> WorkspaceHome:
        async with self._db.transaction(marks=False) as conn:
            row = await conn.raw.fetchrow(
                "SELECT workspace_id, region, created_at, moving_to FROM directory_workspaces "
                "WHERE workspace_id = $1 FOR UPDATE",
                workspace_id,
            )
            if row is None:
                raise NotFound("workspace", workspace_id)
            check_move(_home(row), to)
            row = await conn.raw.fetchrow(
                "UPDATE directory_workspaces SET moving_to = $2 WHERE workspace_id = $1 "
                "RETURNING workspace_id, region, created_at, moving_to",
                workspace_id,
                to,
            )
        return _home(row)

    async def end_move(self, workspace_id: str, *, moved: bool) -> WorkspaceHome:
        async with self._db.transaction(marks=False) as conn:
            row = await conn.raw.fetchrow(
                "UPDATE directory_workspaces SET "
                "region = CASE WHEN $2 THEN coalesce(moving_to, region) ELSE region END, "
                "moving_to = NULL WHERE workspace_id = $1 "
                "RETURNING workspace_id, region, created_at, moving_to",
                workspace_id,
                moved,
            )
        if row is None:
            raise NotFound("workspace", workspace_id)
        return _home(row)


def _home(row: Any) -> WorkspaceHome:
    created: datetime = row["created_at"]
    return WorkspaceHome(row["workspace_id"], row["region"], created, row["moving_to"])


def _key(row: Any) -> KeyHome:
    return KeyHome(
        row["prefix"],
        row["key_id"],
        row["workspace_id"],
        row["region"],
        row["digest"],
        revoked=row["revoked"],
        moving_to=row["moving_to"],
    )
