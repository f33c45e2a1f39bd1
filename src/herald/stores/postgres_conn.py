"""The PostgreSQL store's connection layer: named queries, a pool, errors, migrations.

The driver is asyncpg, chosen by measurement (``bench/drivers.py``: 1.2x psycopg 3 on claims
and guarded writes); this module and :mod:`herald.stores.postgres_listen` are the only ones
that touch it. Every query goes through :class:`Database` or :class:`Connection`, which bind
parameters by name and translate driver errors at the boundary:

- integrity violations (unique, foreign key, check) -> :class:`~herald.errors.InvalidInput`;
- what may succeed if simply tried again (:func:`transient`: the connection lost or refused,
  the server shutting down or out of connection slots, a serialization failure or deadlock)
  -> :class:`~herald.errors.StoreUnavailable`. A connection that died, or that the driver lost
  track of, is closed rather than given back to the pool, which opens a new one at the next
  checkout;
- everything else the driver or the network raises -> :class:`~herald.errors.StoreError`;

always keeping the driver's exception as ``__cause__``.

A :class:`Database` may have a read replica (:attr:`Database.replica`, see
:mod:`herald.stores.postgres_replica`): reads go to it only inside :func:`from_replica`,
which the store enters once it knows the replica is fresh enough for the caller; and every
write committed while an API key is set (:mod:`herald.readsession`) records the primary's
WAL position for that key, so that its next reads wait for the replica or go to the primary.

Writes have one way in: :meth:`Database.transaction` (and :meth:`Database.execute`, and the
one-statement helpers given a query that writes, which run in one when they must). While an
API request holds an idempotency key claim (:mod:`herald.keyclaim`), a transaction's first
statement marks the key committed with it, and a claim lost refuses the transaction
(:class:`~herald.errors.IdempotencyClaimLost`). A connection from :meth:`Database.connection`
is for reads: it refuses a named query that writes (:attr:`Query.writes`), so no write can go
around the mark.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from herald import keyclaim, readsession
from herald.backoff import Backoff
from herald.constants import MIGRATION_LOCK_PREFIX
from herald.errors import ConfigError, HeraldError, InvalidInput, StoreError, StoreUnavailable
from herald.stores.contract import claim_lost, mark_values
from herald.stores.queries import load_queries
from herald.stores.queries import migration_files as load_migration_files

__all__ = [
    "PARAM",
    "Connection",
    "Database",
    "Query",
    "Record",
    "Unchanged",
    "apply_migrations",
    "compiled",
    "from_replica",
    "migration_files",
    "named_sql",
    "split_schema",
    "transient",
    "translated",
]

log = logging.getLogger("herald.store")

#: A driver row, read by column name (``row["state"]``; see :mod:`herald.stores.rows`).
Record = Any

#: A named parameter (``:name``) in a query; ``::type`` casts are not parameters.
PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
#: What makes a statement a write: it changes rows, or locks them to (``FOR UPDATE``).
_WRITES = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")
_CONFLICT = "conflicts with existing data"
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Errors of the driver and the network below it; PostgresError covers server-side errors.
_DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

#: Server errors that say "try again": admin_shutdown, crash_shutdown, cannot_connect_now
#: (a failover, a restart, pg_terminate_backend), too_many_connections, and the victims of
#: serialization failures and deadlocks. Class 08 (connection exceptions) is matched apart.
_TRY_AGAIN = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says nothing about the call itself: the same call may succeed later.

    A connection that dies inside a transaction surfaces as an ``InterfaceError`` from the
    rollback ("the underlying connection is closed"), with the loss as its context.
    """
    if isinstance(exc, OSError | TimeoutError | asyncpg.PostgresConnectionError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state in _TRY_AGAIN or state.startswith("08")
    if isinstance(exc, asyncpg.InterfaceError):
        closed = "connection is closed" in str(exc) or "connection was closed" in str(exc)
        return closed or (exc.__context__ is not None and transient(exc.__context__))
    # The driver lost track of the protocol ("cannot switch to state 12; another operation is
    # in progress"): what a session ended mid-operation leaves behind (MagicStack/asyncpg#1069).
    # The connection is dropped (Database.connection); a new one will do.
    return isinstance(exc, asyncpg.InternalClientError)


def _unusable(exc: BaseException) -> bool:
    """Whether the connection that raised ``exc`` must not go back to the pool. A deadlock or
    serialization victim, or a refused statement, leaves its connection usable."""
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state.startswith("08") or state in ("57P01", "57P02")
    return transient(exc)


#: Whether the running block's reads may go to the read replica (see :func:`from_replica`).
_replica_reads: ContextVar[bool] = ContextVar("herald_replica_reads", default=False)


@contextmanager
def from_replica() -> Iterator[None]:
    """Within the block, reads of a :class:`Database` that has a replica go to the replica
    (writes always go to the primary)."""
    reset = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(reset)


def named_sql() -> Mapping[str, str]:
    """Every query the PostgreSQL store runs, by name, placeholders filled in."""
    return load_queries("postgres")


class Unchanged(Exception):
    """Raised in a :meth:`Database.transaction` block whose work changed nothing: the
    transaction is rolled back (a key claim's mark with it: a request that wrote nothing
    leaves its key as it was) and the block ends quietly."""


@dataclass(frozen=True, slots=True)
class Query:
    """A named query compiled to the driver's ``$n`` placeholders, bound by parameter name."""

    name: str
    sql: str
    params: tuple[str, ...]
    #: Whether the statement changes rows, or locks them to: it runs in a transaction of
    #: :meth:`Database.transaction` only. Found once, at compile time: every call asks.
    writes: bool

    @classmethod
    def compile(cls, name: str, sql: str) -> Query:
        order: list[str] = []

        def number(match: re.Match[str]) -> str:
            param = match.group(1)
            if param not in order:
                order.append(param)
            return f"${order.index(param) + 1}"

        numbered = PARAM.sub(number, sql)
        writes = _WRITES.search(_COMMENT.sub("", sql)) is not None
        return cls(name, numbered, tuple(order), writes)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        if values.keys() != set(self.params):
            # A typo in a parameter name would otherwise bind NULL and silently match nothing.
            raise TypeError(
                f"query {self.name} takes {sorted(self.params)}, was given {sorted(values)}"
            )
        return [values[p] for p in self.params]


@cache
def compiled() -> dict[str, Query]:
    return {name: Query.compile(name, sql) for name, sql in named_sql().items()}


@contextmanager
def translated(conflict: str = _CONFLICT, field: str | None = None) -> Iterator[None]:
    """Translate driver errors raised inside the block into Herald's (see module docstring)."""
    try:
        yield
    except HeraldError:
        raise
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise InvalidInput(conflict, field=field) from exc
    except _DRIVER_ERRORS as exc:
        kind = StoreUnavailable if transient(exc) else StoreError
        raise kind(f"postgresql: {type(exc).__name__}: {exc}") from exc


def split_schema(url: str) -> tuple[str, str | None]:
    """``postgresql://.../db?schema=name`` -> (the URL without it, ``name``).

    Herald's own URL parameter: the driver would send any other one to the server as a
    setting. Without it the tables live in the connection's current schema (``public``).
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    if not schemas:
        return url, None
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schemas[-1]


async def _keep_session(_conn: Any) -> None:
    """Give a connection back to the pool as it is. asyncpg's default reset (RESET ALL,
    UNLISTEN *, advisory unlock...) costs a round trip per checkout, and the store leaves no
    session state behind (asyncpg still rolls back a transaction left open)."""


def _rowcount(status: str) -> int:
    """Rows affected, from a command tag such as ``UPDATE 3`` or ``INSERT 0 5``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class Connection:
    """One connection checked out of the pool: for reads, or (``writes``) inside a transaction
    of :meth:`Database.transaction`."""

    def __init__(self, raw: Any, *, writes: bool = False) -> None:
        self.raw = raw  # the driver's connection: for this module only
        self.writes = writes

    def _bound(self, query: Query, values: Mapping[str, Any]) -> list[Any]:
        if query.writes and not self.writes:
            raise TypeError(f"query {query.name} writes: run it in Database.transaction()")
        return query.args(values)

    async def fetch(self, query: Query, /, **values: Any) -> list[Record]:
        args = self._bound(query, values)
        result: list[Record] = await self.raw.fetch(query.sql, *args)
        return result

    async def fetchrow(self, query: Query, /, **values: Any) -> Record | None:
        args = self._bound(query, values)
        return await self.raw.fetchrow(query.sql, *args)

    async def fetchval(self, query: Query, /, **values: Any) -> Any:
        args = self._bound(query, values)
        return await self.raw.fetchval(query.sql, *args)

    async def execute(self, query: Query, /, **values: Any) -> int:
        """Run a statement; return how many rows it changed."""
        args = self._bound(query, values)
        return _rowcount(await self.raw.execute(query.sql, *args))

    async def script(self, sql: str) -> None:
        """Run several statements without parameters (migrations)."""
        await self.raw.execute(sql)


class Database:
    """A connection pool on one schema, with the store's named queries."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None,
        pool_size: int,
        command_timeout_s: float,
        application_name: str = "herald",
        open_timeout_s: float = 60.0,
        migrate: bool = True,
    ) -> None:
        url, in_url = split_schema(url)
        schema = schema or in_url
        # libpq's own URL parameter, which operators use to tell processes apart in
        # pg_stat_activity (and to terminate one kind's sessions): it wins over the default.
        named = [v for k, v in parse_qsl(urlsplit(url).query) if k == "application_name"]
        application_name = named[-1] if named else application_name
        if schema is not None and not _SCHEMA.match(schema):
            raise ConfigError(f"not a plain lower-case schema name: {schema!r}")
        self.url = url
        self.schema = schema
        self.pool_size = pool_size
        self.command_timeout_s = command_timeout_s
        self.application_name = application_name
        self.open_timeout_s = open_timeout_s
        #: False for a read replica: its schema is the primary's, which migrates it.
        self.migrate = migrate
        #: The read replica, if one is configured (reads go to it within from_replica()).
        self.replica: Database | None = None
        self.q = compiled()
        self._pool: Any = None

    def server_settings(self) -> dict[str, str]:
        # Herald's statements are short, their best plans do not depend on the values bound:
        # - a prepared statement's generic plan is planned once per connection; "auto" would
        #   plan the claim and the guarded write anew five times first, and whenever it doubts
        #   (measured: the guarded write 0.69 ms instead of 0.96 ms, the claim 0.8 instead of 1.4);
        # - JIT would compile the claim's plan on a big table: tens of milliseconds, for a query
        #   that runs in one.
        settings = {
            "application_name": self.application_name,
            "plan_cache_mode": "force_generic_plan",
            "jit": "off",
        }
        if self.schema is not None:
            settings["search_path"] = self.schema
        return settings

    async def open(self) -> None:
        """Connect and migrate. A database that is away (restarting, failing over, cutting
        sessions) is waited for, up to ``open_timeout_s``, as every later call waits for it:
        an engine started meanwhile must not exit for it."""
        backoff = Backoff(base_s=0.1, cap_s=2.0)
        deadline = time.monotonic() + self.open_timeout_s
        while True:
            try:
                await self._open()
                return
            except StoreUnavailable as exc:
                wait_s = backoff.next_s()
                if time.monotonic() + wait_s > deadline:
                    raise
                log.warning("store.open_retry", extra={"error": str(exc), "delay_s": wait_s})
                await asyncio.sleep(wait_s)

    async def _open(self) -> None:
        with translated():
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self.pool_size,
                command_timeout=self.command_timeout_s,
                server_settings=self.server_settings(),
                reset=_keep_session,
            )
        if not self.migrate:
            return
        try:
            async with self.connection() as conn:
                if self.schema is None:
                    self.schema = await conn.raw.fetchval("SELECT current_schema()")
                    if self.schema is None:
                        raise ConfigError("no schema to use: pass one, or fix search_path")
                applied = await apply_migrations(conn, self.schema)
        except BaseException:
            await self.close()
            raise
        if applied:
            log.info("store.migrated", extra={"schema": self.schema, "migrations": applied})

    async def close(self, grace_s: float = 10.0) -> None:
        """Close every connection once it is released; after ``grace_s``, cut the rest (a
        query still running then is rolled back by the server)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            with translated():
                await asyncio.wait_for(pool.close(), grace_s)
        except StoreError as exc:
            # Closing is the end of the store's life: what is left to do is drop the rest.
            log.warning("store.close_forced", extra={"error": str(exc)})
            pool.terminate()

    def connection(
        self, conflict: str = _CONFLICT, field: str | None = None
    ) -> AbstractAsyncContextManager[Connection]:
        """A connection from the pool, for reads; errors raised in the block are translated,
        an integrity violation into ``InvalidInput(conflict, field=field)``. Within
        :func:`from_replica`, from the read replica's pool when there is one."""
        if self.replica is not None and _replica_reads.get():
            return self.replica.connection(conflict, field)
        return self._checkout(conflict, field, writes=False)

    @asynccontextmanager
    async def _checkout(
        self, conflict: str, field: str | None, *, writes: bool
    ) -> AsyncIterator[Connection]:
        if self._pool is None:
            raise StoreError("the PostgreSQL store is not open")
        with translated(conflict, field):
            async with self._pool.acquire() as raw:
                try:
                    yield Connection(raw, writes=writes)
                except BaseException as exc:
                    if _unusable(exc):
                        # Closed, so the pool opens a new one at the next checkout: the
                        # pool's reset is skipped (_keep_session), and would not notice.
                        # One the driver closed itself is back in the pool already.
                        with contextlib.suppress(asyncpg.InterfaceError):
                            raw.terminate()
                    raise

    @asynccontextmanager
    async def transaction(
        self,
        conflict: str = _CONFLICT,
        field: str | None = None,
        *,
        single: bool = False,
        marks: bool = True,
    ) -> AsyncIterator[Connection]:
        """A connection inside BEGIN ... COMMIT, rolled back on any error (or on
        :class:`Unchanged`, which ends the block quietly): the way to write.

        While the running task holds a key claim, the first statement marks the claim's key
        committed: a claim lost raises :class:`~herald.errors.IdempotencyClaimLost` before any
        work. ``single``: the block runs one statement, atomic by itself, so without a claim
        no BEGIN is sent (a round trip each way saved on the engine's hot paths). ``marks=False``:
        the statements on the keys themselves, which never mark."""
        claim = keyclaim.current() if marks else None
        # An API key's write, with a replica to read from: its position is recorded once it
        # committed (the statements on idempotency keys are not what a listing shows).
        reader = readsession.current() if marks and self.replica is not None else None
        committed = False
        async with self._checkout(conflict, field, writes=True) as conn:
            with contextlib.suppress(Unchanged):
                if single and claim is None:
                    yield conn
                else:
                    async with conn.raw.transaction():
                        if claim is not None:
                            mark = self.q["mark_idempotent"]
                            if await conn.execute(mark, **mark_values(claim)) == 0:
                                raise claim_lost()
                        yield conn
                committed = True
        if committed and reader is not None:
            # After the commit, never inside: a position taken before the commit record
            # would let a replica that has not replayed it serve the key's next read.
            await self._record_read_position(reader)

    async def _record_read_position(self, key_id: str) -> None:
        """Record the primary's WAL position for ``key_id``'s committed write. A failure is
        logged, not raised: the write is committed, and an error now would tell the caller
        it was not, inviting a resend (a second post). The cost of a position lost is one
        key's listings possibly served by a replica that has not replayed its write yet,
        for as long as the replica lags (``database.replica_max_lag_s`` at most)."""
        try:
            async with self._checkout(_CONFLICT, None, writes=True) as conn:
                await conn.execute(self.q["record_read_position"], key_id=key_id)
        except StoreError as exc:
            log.warning("store.read_position_lost", extra={"key_id": key_id, "error": str(exc)})

    async def fetch(self, name: str, /, **values: Any) -> list[Record]:
        async with self._statement(name) as conn:
            return await conn.fetch(self.q[name], **values)

    async def fetchrow(self, name: str, /, **values: Any) -> Record | None:
        async with self._statement(name) as conn:
            return await conn.fetchrow(self.q[name], **values)

    async def fetchval(self, name: str, /, **values: Any) -> Any:
        async with self._statement(name) as conn:
            return await conn.fetchval(self.q[name], **values)

    async def execute(self, name: str, /, **values: Any) -> int:
        """Run the write statement ``name`` (a transaction of one statement); how many rows it
        changed."""
        async with self.transaction(single=True) as conn:
            return await conn.execute(self.q[name], **values)

    def _statement(self, name: str) -> AbstractAsyncContextManager[Connection]:
        """Where one statement runs: a read on a connection, a write in a transaction."""
        return self.transaction(single=True) if self.q[name].writes else self.connection()


# -- migrations -------------------------------------------------------------------------------
def migration_files() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every PostgreSQL migration, in order."""
    return load_migration_files("postgres")


async def apply_migrations(conn: Connection, schema: str) -> list[str]:
    """Apply every migration not yet recorded in ``schema_migrations``; return their names.

    Several processes may start at once: an advisory lock keyed on the schema makes them take
    turns, and the later ones find the versions recorded. Each migration runs in its own
    transaction with its bookkeeping row, so a failure leaves the schema at the previous
    version. The schema itself is created under the same lock.
    """
    raw = conn.raw
    key = f"{MIGRATION_LOCK_PREFIX}{schema}"
    await raw.execute("SELECT pg_advisory_lock(hashtext($1))", key)
    try:
        await raw.execute(
            f'CREATE SCHEMA IF NOT EXISTS "{schema}";'
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done: list[str] = []
        for version, name, sql in migration_files():
            async with raw.transaction():
                seen = await raw.fetchval(
                    f'SELECT 1 FROM "{schema}".schema_migrations WHERE version = $1', version
                )
                if seen is None:
                    await raw.execute(f'SET LOCAL search_path TO "{schema}"')
                    await raw.execute(sql)
                    await raw.execute(
                        f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                        version,
                        name,
                    )
                    done.append(name)
        return done
    finally:
        # A session that died took its lock with it; the error that killed it is the one to
        # report, not the driver's complaint that the connection is gone.
        with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError):
            await raw.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
