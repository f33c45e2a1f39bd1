"""Store errors translated at the boundary: the transient ones (the same call may succeed
later) become StoreUnavailable, retried with back-off; the rest stay StoreError."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest

from herald.errors import InvalidInput, StoreError, StoreUnavailable
from herald.stores.postgres_conn import transient, translated
from herald.stores.sqlite_conn import ThreadedConnection

E = asyncpg.exceptions

TRANSIENT = [
    E.AdminShutdownError("terminating connection due to administrator command"),  # 57P01
    E.CrashShutdownError("the database system is in recovery mode"),  # 57P02
    E.CannotConnectNowError("the database system is shutting down"),  # 57P03
    E.TooManyConnectionsError("sorry, too many clients already"),  # 53300
    E.SerializationError("could not serialize access"),  # 40001
    E.DeadlockDetectedError("deadlock detected"),  # 40P01
    E.ConnectionDoesNotExistError("connection was closed in the middle of operation"),  # 08003
    E.ConnectionFailureError("connection failure"),  # 08006
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
    E.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed"),
    E.InterfaceError("connection is closed"),
]
LASTING = [
    E.UndefinedTableError('relation "deliveries" does not exist'),
    E.PostgresSyntaxError("syntax error at or near"),
    E.QueryCanceledError("canceling statement due to user request"),
    E.DiskFullError("could not extend file"),
    E.InterfaceError("cannot perform operation: another operation is in progress"),
    E.DataError("invalid input syntax"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_postgres_errors_become_store_unavailable(exc):
    assert transient(exc)
    with pytest.raises(StoreUnavailable) as raised, translated():
        raise exc
    assert raised.value.__cause__ is exc


@pytest.mark.parametrize("exc", LASTING, ids=lambda e: type(e).__name__)
def test_other_postgres_errors_stay_store_errors(exc):
    assert not transient(exc)
    with pytest.raises(StoreError) as raised, translated():
        raise exc
    assert not isinstance(raised.value, StoreUnavailable)


def test_a_connection_lost_inside_a_transaction_is_transient():
    """asyncpg raises the rollback's InterfaceError, the loss as its context."""
    rollback = E.InterfaceError("cannot call Transaction.__aexit__(): the connection failed")
    assert not transient(rollback)
    rollback.__context__ = E.ConnectionDoesNotExistError("connection was closed")
    assert transient(rollback)


def test_integrity_violations_are_still_invalid_input():
    with pytest.raises(InvalidInput), translated("taken"):
        raise E.UniqueViolationError("duplicate key")


async def test_a_locked_sqlite_database_is_unavailable_not_broken(tmp_path):
    path = str(tmp_path / "locked.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    waiter = sqlite3.connect(path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as locked:
            waiter.execute("SELECT * FROM t")
    finally:
        waiter.close()
        holder.execute("ROLLBACK")
        holder.close()
    conn = ThreadedConnection(path, synchronous="NORMAL", name="test")

    def busy(_conn):
        raise locked.value

    def broken(_conn):
        raise sqlite3.OperationalError("no such table: nothing")

    try:
        with pytest.raises(StoreUnavailable):
            await conn.run(busy)
        with pytest.raises(StoreError) as other:
            await conn.run(broken)
        assert not isinstance(other.value, StoreUnavailable)
    finally:
        await conn.close()
