"""A SQLite connection owned by one thread, driven from asyncio.

Each call runs a whole unit of work (a transaction, a batch) in the connection's thread with a
single hop, so transactions never interleave and the event loop never blocks on disk.

The store writes through one of them, the writer, whose :meth:`ThreadedConnection.transaction`
is its only way to write: there, every write made under an API request's idempotency key claim
(:mod:`herald.keyclaim`) marks the key committed with it. Its readers are read-only
(``PRAGMA query_only``), so no write can go around that.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from herald import keyclaim
from herald.errors import StoreError, StoreUnavailable
from herald.stores.contract import claim_lost, mark_values
from herald.stores.queries import migration_files

__all__ = ["ThreadedConnection", "apply_migrations"]

T = TypeVar("T")


class ThreadedConnection:
    """``mark_sql``: the statement that marks a key claim's key committed (the writer's);
    None for a reader, which cannot write at all."""

    def __init__(
        self, path: str, *, synchronous: str, name: str, mark_sql: str | None = None
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._name = name
        self._mark_sql = mark_sql
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=True)
        conn.row_factory = sqlite3.Row  # rows are read by column name (herald.stores.rows)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            f"PRAGMA synchronous={self._synchronous}",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=10000",
            "PRAGMA temp_store=MEMORY",
            "PRAGMA cache_size=-65536",
        ):
            conn.execute(pragma)
        if self._mark_sql is None:
            conn.execute("PRAGMA query_only=ON")
        self._conn = conn
        return conn

    async def open(self) -> None:
        await self.run(lambda _conn: None)

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            return work(self._conn or self._connect())

        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._name)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.Error as exc:
            # Locked or busy past busy_timeout: another connection held the file; later may do.
            kind = StoreUnavailable if _busy(exc) else StoreError
            raise kind(f"sqlite: {exc}") from exc

    async def transaction(
        self, work: Callable[[sqlite3.Connection], T], *, marks: bool = True
    ) -> T:
        """Run ``work`` inside BEGIN IMMEDIATE ... COMMIT, rolling back on any error.

        While the running task holds a key claim, the transaction first marks the claim's key
        committed: a claim lost raises :class:`~herald.errors.IdempotencyClaimLost` before any
        work. A transaction whose work then changed no row is rolled back instead: it would
        commit the mark alone, and a request that wrote nothing leaves its key as it was.
        ``marks=False``: the statements on the keys themselves, which never mark."""
        # Read here, in the task: the connection's thread does not see the task's context.
        claim = keyclaim.current() if marks else None
        mark = None
        if claim is not None:
            if self._mark_sql is None:
                raise StoreError("a write on a read-only connection")
            mark = (self._mark_sql, mark_values(claim))

        def atomic(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if mark is not None and conn.execute(*mark).rowcount == 0:
                    raise claim_lost()
                before = conn.total_changes
                result = work(conn)
                unchanged = mark is not None and conn.total_changes == before
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("ROLLBACK" if unchanged else "COMMIT")
            return result

        return await self.run(atomic)

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self.run(shut)
            self._conn = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def _busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included (the primary code is the low byte)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _migration_files() -> list[tuple[int, str, str]]:
    return migration_files("sqlite")


def apply_migrations(conn: sqlite3.Connection, *, target: int | None = None) -> list[str]:
    """Apply every migration not yet recorded in ``schema_migrations``; return their names.

    Each migration runs in its own transaction with its bookkeeping row, so a failure leaves
    the schema at the previous version. Two processes migrating at once serialise on the
    write lock; the loser sees the version recorded and skips it. ``target`` stops after that
    version (tests migrate a database holding data from one version to the next).
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done: list[str] = []
    for version, name, sql in _migration_files():
        if target is not None and version > target:
            break
        conn.execute("BEGIN IMMEDIATE")
        try:
            seen = conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (version,)
            ).fetchone()
            if seen is None:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, datetime('now'))",
                    (version, name),
                )
                done.append(name)
            # Inside the try: a COMMIT refused (deferred foreign keys still violated) leaves the
            # transaction open, and it must be rolled back like any other failure.
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return done


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (sqlite3 knows where one ends)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            if pending.strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()
    ):
        raise StoreError("migration ends with an incomplete statement")
    return statements
