"""The PostgreSQL dispatcher's queries read what is due, never the backlog, whatever the
statistics say: none yet, fresh, or taken before a bulk import (EXPLAIN ANALYZE tells).

PostgreSQL has no INDEXED BY. With a join between deliveries and channels the planner was
free to choose, and with 1M future deliveries it chose a nested loop that read the whole due
index once per channel (32-40 s a call right after a bulk import) or, once analysed, a hash
join over every delivery (0.24 s an idle recheck). The queries now test the channel with a
scalar subquery per row, which PostgreSQL never turns into a join: the only way left to the
planner is to walk the due index in order and stop early. These tests hold every statistics
state that leads to, on a backlog far larger than what is due.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from herald.stores.postgres import PostgresStore
from herald.stores.postgres_conn import Query
from herald.stores.queries import load_queries
from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
FUTURE = 30_000  # scheduled from tomorrow on: the backlog no query may read
DUE = 2_000  # due now on active channels
BLOCKED = 50  # due before those, on a disabled channel: the walk steps over them
STALE = 20  # due first, too late to publish, on the disabled channel too
SHAPES = {
    "published": 3_000,
    "due": DUE,
    "blocked": BLOCKED,
    "stale": STALE,
    "future": FUTURE,
}


async def _fill(conn: asyncpg.Connection, *, only: int | None = None) -> None:
    """Channels, posts and deliveries of every shape; ``only``: the first ``only`` of them."""
    limit = "" if only is None else f"LIMIT {only}"
    await conn.execute(
        f"""
        INSERT INTO deliveries (id, post_id, channel_id, platform, due_at, state,
                                next_attempt_at, updated_at)
        SELECT 'd' || lpad(n::text, 6, '0'), 'p' || (n % 100), ch, 'facebook', due, state,
               nxt, $1::timestamptz
        FROM (
            SELECT i AS n, 'ch' || (i % 40) AS ch, $1::timestamptz - i * interval '1 s' AS due,
                   'published' AS state, NULL::timestamptz AS nxt
            FROM generate_series(1, {SHAPES["published"]}) i
            UNION ALL
            SELECT 100000 + i, 'ch' || (i % 40), $1 - i * interval '1 s', 'scheduled',
                   $1 - i * interval '1 s'
            FROM generate_series(1, {DUE}) i
            UNION ALL
            SELECT 200000 + i, 'ch_off', $1 - interval '1 h' - i * interval '1 s',
                   'scheduled', $1 - interval '1 h' - i * interval '1 s'
            FROM generate_series(1, {BLOCKED}) i
            UNION ALL
            SELECT 300000 + i, 'ch_off', $1 - interval '2 days' - i * interval '1 s',
                   'retry_wait', $1 - interval '2 days' - i * interval '1 s'
            FROM generate_series(1, {STALE}) i
            UNION ALL
            SELECT 400000 + i, 'ch' || (i % 40), $1 + interval '1 day' + i * interval '1 min',
                   'scheduled', $1 + interval '1 day' + i * interval '1 min'
            FROM generate_series(1, {FUTURE}) i
        ) shapes
        ORDER BY n {limit}
        """,
        NOW,
    )


@pytest.fixture(params=["no-statistics", "analyzed", "analyzed-before-import"])
async def conn(request: pytest.FixtureRequest, pg_schema: str) -> AsyncIterator[Any]:
    store = PostgresStore(PG_URL, schema=pg_schema)
    await store.open()
    await store.close()
    db = await asyncpg.connect(PG_URL, server_settings={"search_path": pg_schema})
    try:
        for table in ("deliveries", "channels", "posts"):
            # Statistics change only when this test says so.
            await db.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
        await db.execute(
            """
            INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref,
                                  status, created_at)
            SELECT 'ch' || i, 'facebook', 'page' || i, 'n', 'UTC', 'env:T', 'active',
                   $1::timestamptz
            FROM generate_series(0, 39) i
            UNION ALL
            SELECT 'ch_off', 'facebook', 'page_off', 'n', 'UTC', 'env:T', 'disabled',
                   $1::timestamptz
            """,
            NOW,
        )
        await db.execute(
            "INSERT INTO posts (id, content, overrides, created_at) "
            "SELECT 'p' || i, '{}', '{}', $1 FROM generate_series(0, 99) i",
            NOW,
        )
        if request.param == "analyzed-before-import":
            await _fill(db, only=10)
            await db.execute("ANALYZE")
            await db.execute("DELETE FROM deliveries")
        await _fill(db)
        if request.param == "analyzed":
            await db.execute("ANALYZE")
        yield db
    finally:
        await db.close()


def _query(name: str) -> Query:
    return Query.compile(name, load_queries("postgres")[name])


async def _explain(conn: Any, name: str, **values: Any) -> dict[str, Any]:
    """EXPLAIN ANALYZE of the named query, run in a transaction rolled back after."""
    query = _query(name)
    tx = conn.transaction()
    await tx.start()
    try:
        raw = await conn.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {query.sql}", *query.args(values)
        )
    finally:
        await tx.rollback()
    plan: dict[str, Any] = json.loads(raw)[0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _reads_of_deliveries(plan: dict[str, Any]) -> int:
    """Delivery rows (or index entries of theirs) the plan produced or filtered out."""
    total = 0
    for node in _nodes(plan):
        on_deliveries = node.get("Relation Name") == "deliveries" or str(
            node.get("Index Name", "")
        ).startswith("deliveries")
        if on_deliveries and node["Node Type"] != "ModifyTable":
            loops = node.get("Actual Loops", 1)
            total += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    return total


def _scans(plan: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (n["Node Type"], n.get("Index Name", ""))
        for n in _nodes(plan)
        if n.get("Relation Name") == "deliveries" or "Index Name" in n
    ]


CLAIM = {
    "now": NOW,
    "expire_before": NOW - timedelta(days=1),
    "limit": 100,
    "token": "t",
    "lease_until": NOW + timedelta(minutes=5),
    "engine_id": "eng_a",
}


async def test_the_next_due_time_is_read_from_the_front_of_the_due_index(conn):
    plan = await _explain(conn, "next_due_at")
    scans = _scans(plan)
    assert ("Index Scan", "deliveries_due") in scans, scans
    assert not any(kind in ("Seq Scan", "Bitmap Index Scan") for kind, _ in scans), scans
    assert not any(n["Node Type"] in ("Sort", "Aggregate") for n in _nodes(plan)), plan
    # The disabled channel's come first: stepped over, then the first due one; not the backlog.
    assert _reads_of_deliveries(plan) == STALE + BLOCKED + 1, plan
    earliest = await conn.fetchval(_query("next_due_at").sql)
    assert earliest == NOW - timedelta(seconds=DUE)


async def test_the_claim_reads_the_due_deliveries_and_never_the_future_ones(conn):
    plan = await _explain(conn, "claim_due", **CLAIM)
    scans = _scans(plan)
    assert not any(kind == "Seq Scan" for kind, _ in scans), scans
    assert _reads_of_deliveries(plan) < (DUE + BLOCKED + STALE) * 3, plan  # not FUTURE
    query = _query("claim_due")
    async with conn.transaction():
        rows = await conn.fetch(query.sql, *query.args(CLAIM))
    claimed = [r for r in rows if r["claimed"]]
    assert len(claimed) == 100
    assert all(r["channel_id"] != "ch_off" for r in claimed)
    assert sum(not r["claimed"] for r in rows) == STALE  # expired on the way
    assert max(r["next_attempt_at"] for r in claimed) <= NOW
