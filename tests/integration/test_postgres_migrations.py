"""Applying every PostgreSQL migration yields the declared schema (stores/schema/postgres.sql).

The migrations run through the store (advisory lock, schema_migrations) into one fresh schema,
the declared file into another; both are read back from PostgreSQL's catalogue (columns with
types, collations, nullability, defaults and identity; constraints and indexes as PostgreSQL
prints them) and compared.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

import herald.stores
from herald.stores.postgres import PostgresStore
from tests.conftest import PG_URL, drop_schema, new_schema

pytestmark = pytest.mark.postgres

DECLARED = Path(herald.stores.__file__).parent / "schema" / "postgres.sql"

COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, co.collname
FROM pg_attribute a
LEFT JOIN pg_collation co ON co.oid = a.attcollation
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = $1 AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
"""
CONSTRAINTS = """
SELECT c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1
"""
INDEXES = """
SELECT t.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = $1
"""


async def catalogue(conn, schema: str) -> dict[str, object]:
    """Every column, constraint and index of ``schema`` but the migrations' bookkeeping."""
    await conn.execute(f"SET search_path TO {schema}")  # definitions print unqualified
    out: dict[str, object] = {}
    for table, column, *details in await conn.fetch(COLUMNS, schema):
        out[f"column {table}.{column}"] = tuple(details)
    for table, name, kind, definition in await conn.fetch(CONSTRAINTS, schema):
        out[f"constraint {table}.{name}"] = (kind, definition)
    for table, name, definition in await conn.fetch(INDEXES, schema):
        out[f"index {table}.{name}"] = definition.replace(f"{schema}.", "")
    return {k: v for k, v in out.items() if "schema_migrations" not in k}


def differences(a: dict[str, object], b: dict[str, object]) -> list[str]:
    return [
        f"{key}: migrations {a.get(key)!r} != declared {b.get(key)!r}"
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]


@pytest.fixture
async def schemas():
    """(migrated schema, declared schema, admin connection)."""
    migrated, declared = new_schema(), new_schema()
    store = PostgresStore(PG_URL, schema=migrated, pool_size=1)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {declared}; SET search_path TO {declared}")
        await conn.execute(DECLARED.read_text(encoding="utf-8"))
        yield migrated, declared, conn
    finally:
        await conn.close()
        await drop_schema(migrated)
        await drop_schema(declared)


async def test_migrations_yield_the_declared_schema(schemas):
    migrated, declared, conn = schemas
    got, want = await catalogue(conn, migrated), await catalogue(conn, declared)
    assert len(want) > 100  # the comparison has something to compare
    assert differences(got, want) == []
    seeded = await conn.fetch(f"SELECT id FROM {migrated}.workspaces")
    assert [r[0] for r in seeded] == ["ws_default"]


@pytest.mark.parametrize(
    "damage",
    [
        "DROP INDEX {s}.deliveries_due",
        "ALTER TABLE {s}.deliveries ALTER COLUMN attempts DROP DEFAULT",
        "ALTER TABLE {s}.channels DROP CONSTRAINT channels_status_check",
        "ALTER TABLE {s}.posts ALTER COLUMN created_at TYPE timestamp",
        "CREATE INDEX deliveries_extra ON {s}.deliveries (updated_at)",
        'ALTER TABLE {s}.api_keys ALTER COLUMN workspace_id TYPE text COLLATE "default"',
    ],
)
async def test_the_comparison_sees_what_a_migration_forgot(schemas, damage):
    migrated, declared, conn = schemas
    await conn.execute(damage.format(s=migrated))
    assert differences(await catalogue(conn, migrated), await catalogue(conn, declared))


async def test_a_store_opening_while_the_database_is_away_waits_for_it(pg_schema, monkeypatch):
    """An engine started while the database restarts or cuts sessions must not exit: the
    store's opening is retried like every later call, within its open timeout."""
    real = asyncpg.create_pool
    refusals = 2

    async def refusing(*args, **kwargs):
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise ConnectionRefusedError("the database is restarting")
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "create_pool", refusing)
    store = PostgresStore(PG_URL, schema=pg_schema)
    await store.open()
    try:
        assert refusals == 0
        assert await store.list_workspaces() is not None
    finally:
        await store.close()


async def test_a_session_lost_during_migration_reports_the_loss_not_the_unlock(monkeypatch):
    """The unlock in the migration's ``finally`` runs on a connection the driver already
    gave back: its complaint must not replace the loss, which is what says "try again"."""
    from herald.stores.postgres_conn import Connection, apply_migrations, transient

    class LostSession:
        calls = 0

        async def execute(self, sql, *args):
            self.calls += 1
            if "pg_advisory_unlock" in sql:
                raise asyncpg.InterfaceError(
                    "cannot call Connection.execute(): connection has been released back to "
                    "the pool"
                )
            if self.calls > 1:
                raise asyncpg.AdminShutdownError("terminating connection due to administrator")

    with pytest.raises(asyncpg.AdminShutdownError) as raised:
        await apply_migrations(Connection(LostSession()), "herald_lost")
    assert transient(raised.value)
