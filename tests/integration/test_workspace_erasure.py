"""Erasing a workspace leaves nothing of it in the SQL stores: every column of every table is
read back and searched for the workspace's ids and its sealed secrets, so a table added later
that the erasure forgets fails here."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest

from herald.stores.sqlite import SQLiteStore
from tests.conftest import PG_URL
from tests.suites.catalog_contract import Populated

SECRETS = (b"sealed-credentials", b"sealed-secret")


async def populated(store) -> tuple[Populated, Populated]:
    gone = await Populated.make(store, "Gone")
    await gone.publish(store)
    kept = await Populated.make(store, "Kept")
    return gone, kept


#: Tables that hold nothing of any workspace.
NO_TENANT = {"engines", "schema_migrations"}


def tables_holding(rows, ids) -> set[str]:
    return {t for t, row in rows if any(i in str(row) for i in ids)}


def every_table_held_some(rows, tables, gone: Populated) -> None:
    """Before the erasure: each table had something of the workspace, so the scan after it
    tests every table (a table Populated leaves empty would pass unseen)."""
    assert tables_holding(rows, gone.ids) == set(tables) - NO_TENANT


def secrets_of_kept(rows) -> int:
    return sum(
        1 for _, row in rows for v in row if isinstance(v, bytes) and any(s in v for s in SECRETS)
    )


async def test_nothing_of_an_erased_workspace_is_left_in_sqlite(tmp_path):
    def read_back():
        with sqlite3.connect(tmp_path / "herald.db") as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'"
                )
            ]
            return tables, [
                (t, tuple(r)) for t in tables for r in conn.execute(f'SELECT * FROM "{t}"')
            ]

    store = SQLiteStore(tmp_path / "herald.db", synchronous="NORMAL")
    await store.open()
    try:
        gone, kept = await populated(store)
        tables, before = read_back()
        every_table_held_some(before, tables, gone)
        await store.erase_workspace(gone.ws.id)
    finally:
        await store.close()
    tables, rows = read_back()
    assert not [r for r in rows if any(i in str(r) for i in gone.ids)]
    assert secrets_of_kept(rows) == 2  # the kept workspace's two sealed secrets, no more
    assert any(kept.ws.id in str(r) for r in rows)


@pytest.mark.postgres
async def test_nothing_of_an_erased_workspace_is_left_in_postgres(pg_stores):
    async def read_back():
        conn = await asyncpg.connect(PG_URL)
        try:
            tables = [
                r["table_name"]
                for r in await conn.fetch(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
                    pg_stores.schema,
                )
            ]
            return tables, [
                (t, tuple(r.values()))
                for t in tables
                for r in await conn.fetch(f'SELECT * FROM "{pg_stores.schema}"."{t}"')
            ]
        finally:
            await conn.close()

    store = await pg_stores.open()
    gone, kept = await populated(store)
    # Read positions (kept for read replicas) of both workspaces' keys, as their writes leave,
    # and a move's hold of one delivery of each (as an interrupted move leaves).
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": pg_stores.schema})
    try:
        for made in (gone, kept):
            for key in await store.list_api_keys(made.ws.id):
                await conn.execute("INSERT INTO read_positions VALUES ($1, 1, now())", key.id)
            delivery = await conn.fetchval(
                "SELECT d.id FROM deliveries d JOIN posts p ON p.id = d.post_id "
                "WHERE p.workspace_id = $1 LIMIT 1",
                made.ws.id,
            )
            await conn.execute(
                "INSERT INTO move_holds VALUES ('delivery', $1, $2, now())", delivery, made.ws.id
            )
    finally:
        await conn.close()
    tables, before = await read_back()
    assert "deliveries" in tables
    every_table_held_some(before, tables, gone)
    await store.erase_workspace(gone.ws.id)
    tables, rows = await read_back()
    assert not [r for r in rows if any(i in str(r) for i in gone.ids)]
    assert secrets_of_kept(rows) == 2
    assert any(kept.ws.id in str(r) for r in rows)
    assert [t for t, _ in rows].count("read_positions") == 1  # the kept key's
    assert [t for t, _ in rows].count("move_holds") == 1  # the kept workspace's


@pytest.mark.postgres
async def test_an_erasure_waits_for_a_write_in_flight_and_then_takes_its_rows_too(pg_stores):
    """An engine's guarded write holds a delivery and adds an attempt; the erasure waits for it
    and erases that attempt too, instead of failing on it half-way."""
    store = await pg_stores.open()
    gone = await Populated.make(store, "Gone")
    post, _imported = await store.list_posts(gone.ws.id)
    (delivery,) = (await store.deliveries_of([post.id]))[post.id]
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": pg_stores.schema})
    try:
        write = conn.transaction()
        await write.start()
        await conn.execute("SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE", delivery.id)
        erasing = asyncio.create_task(store.erase_workspace(gone.ws.id))
        await asyncio.sleep(0.3)
        await conn.execute(
            "INSERT INTO attempts (delivery_id, number, started_at, finished_at, outcome) "
            "VALUES ($1, 1, now(), now(), 'published')",
            delivery.id,
        )
        assert not erasing.done()
        await write.commit()
        counts = await asyncio.wait_for(erasing, 10)
    finally:
        await conn.close()
    assert counts["attempts"] == 1
    assert counts["deliveries"] == 2  # the post's and the import's


@pytest.mark.postgres
async def test_an_erasure_waits_for_a_webhook_event_being_settled(pg_stores):
    """The sender settles an event, then updates its webhook's failure record; the erasure
    takes the same order (events, then webhooks), so the two take turns instead of one of
    them being aborted as a deadlock."""
    store = await pg_stores.open()
    gone = await Populated.make(store, "Gone")
    await gone.publish(store)  # one event for its webhook
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": pg_stores.schema})
    try:
        (event_id, webhook_id) = await conn.fetchrow(
            "SELECT e.id, e.webhook_id FROM webhook_events e JOIN webhooks w "
            "ON w.id = e.webhook_id WHERE w.workspace_id = $1",
            gone.ws.id,
        )
        settle = conn.transaction()
        await settle.start()
        await conn.execute("UPDATE webhook_events SET last_error = 'x' WHERE id = $1", event_id)
        erasing = asyncio.create_task(store.erase_workspace(gone.ws.id))
        await asyncio.sleep(0.3)
        await conn.execute(
            "UPDATE webhooks SET failure_streak = failure_streak + 1 WHERE id = $1", webhook_id
        )
        await settle.commit()
        counts = await asyncio.wait_for(erasing, 10)
    finally:
        await conn.close()
    assert counts["webhook_events"] == 1
    assert counts["webhooks"] == 1
