"""The SQLite claim uses the indexes made for it, as EXPLAIN QUERY PLAN tells.

Left to itself, SQLite's planner (no statistics) took deliveries_state for both claim queries:
every claimable delivery walked on every claim, future ones included, and sorted for
claim_due. The queries now name their index; these tests keep it so, with and without the
statistics ANALYZE would give the planner.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from herald.domain import DEFAULT_WORKSPACE
from herald.states import DeliveryState
from herald.stores.contract import PostQuery
from herald.stores.queries import load_queries
from herald.stores.sqlite_catalog import list_posts_sql
from herald.stores.sqlite_conn import apply_migrations

US, DAY = 1_000_000, 86_400_000_000
NOW = 1_700_000_000 * US
PARAMS = {
    "now": NOW,
    "expire_before": NOW - DAY,
    "token": "t",
    "lease_until": NOW + 3600 * US,
    "limit": 100,
    "engine_id": "eng_a",
}


def _query(name: str) -> str:
    return load_queries("sqlite")[name]


def _plan(conn: sqlite3.Connection, name: str) -> list[str]:
    return [r["detail"] for r in conn.execute(f"EXPLAIN QUERY PLAN {_query(name)}", PARAMS)]


@pytest.fixture(params=[False, True], ids=["no-statistics", "analyzed"])
def conn(request) -> Iterator[sqlite3.Connection]:
    """Finished deliveries, a backlog of due ones, a few stale ones and a week's schedule."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.row_factory = sqlite3.Row  # as the store reads them: by column name
    db.execute("PRAGMA foreign_keys=ON")
    apply_migrations(db)
    db.execute(
        "INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref, "
        "created_at) VALUES ('ch', 'facebook', 'page', 'n', 'UTC', 'env:T', 0)"
    )
    db.execute("INSERT INTO posts (id, content, overrides, created_at) VALUES ('p', '{}', '{}', 0)")
    shapes = (
        [("published", NOW - i * 1000, None) for i in range(3000)]
        + [("scheduled", NOW - i * 1000, NOW - i * 1000) for i in range(2000)]
        + [("retry_wait", NOW - 2 * DAY - i, NOW - 2 * DAY - i) for i in range(20)]
        + [("scheduled", NOW + i * 1000, NOW + i * 1000) for i in range(3000)]
    )
    db.executemany(
        "INSERT INTO deliveries (id, post_id, channel_id, platform, due_at, state, "
        "next_attempt_at, updated_at) VALUES (?, 'p', 'ch', 'facebook', ?, ?, ?, 0)",
        [(f"d{i:05d}", due, state, nxt) for i, (state, due, nxt) in enumerate(shapes)],
    )
    if request.param:
        db.execute("ANALYZE")
    yield db
    db.close()


def test_the_expiry_check_finds_stale_deliveries_by_due_time(conn):
    assert _plan(conn, "expire_due") == [
        "SEARCH deliveries USING INDEX deliveries_stale (due_at<?)"
    ]
    assert len(conn.execute(_query("expire_due"), PARAMS).fetchall()) == 20


def test_the_claim_takes_due_deliveries_in_due_order_without_sorting(conn):
    plan = _plan(conn, "claim_due")
    assert any("USING INDEX deliveries_due (next_attempt_at" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
    claimed = conn.execute(_query("claim_due"), PARAMS).fetchall()
    assert len(claimed) == 100
    assert max(r["next_attempt_at"] for r in claimed) <= NOW  # only due ones


def test_the_next_due_time_is_read_from_the_front_of_the_due_index(conn):
    plan = _plan(conn, "next_due_at")
    assert any("USING INDEX deliveries_due (next_attempt_at" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
    earliest = conn.execute(_query("next_due_at")).fetchone()["next_attempt_at"]
    assert earliest == NOW - 2 * DAY - 19


def test_what_was_sent_is_read_from_the_window_of_attempts_not_the_history(conn):
    # A week of attempts, one every 2 minutes: the window of the last day is a fifth of them.
    conn.executemany(
        "INSERT INTO attempts (delivery_id, number, started_at, finished_at, outcome) "
        "VALUES (?, 1, ?, ?, 'published')",
        [(f"d{i:05d}", NOW - i * 120 * US, NOW - i * 120 * US) for i in range(3000)],
    )
    params = {"since": NOW - DAY}
    sql = _query("sent_since")
    plan = [r["detail"] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert "SEARCH a USING INDEX attempts_started (started_at>?)" in plan, plan
    assert "SEARCH d USING INDEX deliveries_state (state=?)" in plan, plan
    assert not any(step.startswith(("SCAN a", "SCAN d")) for step in plan), plan
    assert len(conn.execute(sql, params).fetchall()) == 721  # 0 to 720 two-minute steps back


def test_claims_of_gone_engines_are_found_among_the_claimed_ones_only(conn):
    conn.execute(
        "UPDATE deliveries SET state = 'claimed', engine_id = 'eng_dead', lease_until = ? "
        "WHERE id IN ('d03000', 'd03001')",
        (NOW + DAY,),
    )
    params = {"now": NOW, "every": 0, "engines": '["eng_dead"]'}
    sql = _query("recover_claims")
    plan = [r["detail"] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert any(step.startswith("SCAN deliveries USING INDEX deliveries_leased") for step in plan)
    assert conn.execute(sql, params).rowcount == 2


def test_what_removes_import_rows_reads_by_index(conn):
    """Deleting a post (an import discarded, a workspace erased) checks import_posts for it:
    by post_id, not a scan of every import's lines (8.2 s a batch of 500 posts beside 300,000
    lines, on PostgreSQL). The purge finds finished jobs by when they finished."""
    plan = [
        r["detail"]
        for r in conn.execute("EXPLAIN QUERY PLAN SELECT 1 FROM import_posts WHERE post_id = 'p'")
    ]
    assert plan == ["SEARCH import_posts USING COVERING INDEX import_posts_post (post_id=?)"]
    params = {"before": NOW, "limit": 1000}
    sql = _query("purge_imports")
    plan = [r["detail"] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert any("USING INDEX imports_finished (finished_at<?)" in step for step in plan), plan
    assert conn.execute(sql, params).rowcount == 0


@pytest.mark.parametrize(
    "filters",
    [
        {"channel_id": "ch"},
        {"state": DeliveryState.SCHEDULED, "channel_id": "ch"},
        {"state": DeliveryState.PUBLISHED},
        {"due_from": datetime.fromtimestamp(NOW / US, UTC)},
    ],
    ids=["channel", "state-and-channel", "state", "due-from"],
)
def test_a_filtered_listing_reads_each_posts_deliveries_by_post(conn, filters):
    """``GET /v1/posts?channel_id=`` took ``deliveries_channel_due`` for its EXISTS and walked
    every delivery of the channel for each post it looked at (20 ms a page among 20,000 posts,
    bench/load/drive.py); by post it is one short look-up each."""
    sql, args = list_posts_sql(PostQuery(DEFAULT_WORKSPACE, **filters))
    plan = [r["detail"] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args)]
    assert "SEARCH d USING INDEX deliveries_post (post_id=?)" in plan, plan
    assert len(conn.execute(sql, args).fetchall()) == 1
