"""Applying every SQLite migration yields the declared schema (stores/schema/sqlite.sql).

Both databases are read back through SQLite's own catalogue (columns with types, defaults and
keys; foreign keys; CHECK constraints; indexes with their columns and WHERE clauses) and
compared. PostgreSQL's twin is tests/integration/test_postgres_migrations.py.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

import herald.stores
from herald.stores import sqlite_conn
from herald.stores.sqlite_conn import apply_migrations

DECLARED = Path(herald.stores.__file__).parent / "schema" / "sqlite.sql"
_SPACE = re.compile(r"\s+")


def _squeeze(sql: str) -> str:
    return _SPACE.sub(" ", sql).replace("( ", "(").replace(" )", ")").strip()


def _checks(table_sql: str) -> list[str]:
    """Every CHECK (...) clause of a CREATE TABLE, parentheses balanced, whitespace squeezed."""
    found = []
    for match in re.finditer(r"\bCHECK\s*\(", table_sql, re.IGNORECASE):
        depth, start = 1, match.end()
        end = start
        while depth:
            depth += {"(": 1, ")": -1}.get(table_sql[end], 0)
            end += 1
        found.append(_squeeze(table_sql[start : end - 1]))
    return sorted(found)


def _table(conn: sqlite3.Connection, name: str, sql: str) -> dict[str, object]:
    columns = sorted(
        (col, kind.upper(), notnull, default, pk)
        for _, col, kind, notnull, default, pk in conn.execute(f"PRAGMA table_info({name})")
    )
    foreign_keys = sorted(
        (row[2], row[3], row[4], row[5], row[6])
        for row in conn.execute(f"PRAGMA foreign_key_list({name})")
    )
    indexes = []
    for _, index, unique, origin, partial in conn.execute(f"PRAGMA index_list({name})"):
        cols = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({index})"))
        # Automatic indexes (PRIMARY KEY, UNIQUE) are named by position: compare their shape.
        label = "(auto)" if index.startswith("sqlite_autoindex") else index
        indexes.append((label, unique, origin, partial, cols))
    return {
        "columns": columns,
        "foreign_keys": foreign_keys,
        "checks": _checks(sql),
        "indexes": sorted(indexes),
    }


def catalogue(conn: sqlite3.Connection) -> dict[str, object]:
    out: dict[str, object] = {}
    for kind, name, sql in conn.execute(
        "SELECT type, name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'"
    ):
        if kind == "table":
            out[f"table {name}"] = _table(conn, name, sql)
        elif kind == "index":
            out[f"index {name}"] = _squeeze(sql)
        else:
            out[f"{kind} {name}"] = _squeeze(sql or "")
    return out


def migrated(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    apply_migrations(conn)
    return conn


def declared(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(DECLARED.read_text(encoding="utf-8"))
    return conn


def differences(a: dict[str, object], b: dict[str, object]) -> list[str]:
    return [
        f"{key}: migrations {a.get(key)!r} != declared {b.get(key)!r}"
        for key in sorted(a.keys() | b.keys())
        if a.get(key) != b.get(key)
    ]


def test_migrations_yield_the_declared_schema(tmp_path):
    got, want = migrated(tmp_path / "m.db"), declared(tmp_path / "d.db")
    try:
        assert differences(catalogue(got), catalogue(want)) == []
        assert apply_migrations(got) == []  # applied once; a second run has nothing to do
    finally:
        got.close()
        want.close()


def test_the_comparison_sees_a_forgotten_index_column_or_check(tmp_path):
    want = declared(tmp_path / "d.db")
    expected = catalogue(want)
    want.close()
    for i, damage in enumerate(
        (
            "DROP INDEX deliveries_due",
            "ALTER TABLE deliveries ADD COLUMN extra TEXT",
            "CREATE INDEX deliveries_due2 ON deliveries (next_attempt_at)",
        )
    ):
        got = migrated(tmp_path / f"m{i}.db")
        got.execute(damage)
        assert differences(catalogue(got), expected), damage
        got.close()
    # A CHECK constraint that differs is seen too (the catalogue reads it from the table SQL).
    table = "CREATE TABLE t (x INTEGER CHECK (x > 0))"
    assert _checks(table) != _checks(table.replace("> 0", ">= 0"))


# -- migration 0003: channels rebuilt, an account unique per workspace -------------------------
REBUILD = 3


def _at_version(path: Path, version: int) -> sqlite3.Connection:
    """A database migrated to ``version``, on a connection configured like the store's."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    apply_migrations(conn, target=version)
    return conn


def _seed_version_2(conn: sqlite3.Connection) -> None:
    """Two workspaces with channels (one deleted, one with a secret), posts, deliveries,
    attempts, posting slots and a webhook: everything that touches channels at version 2."""
    conn.executescript(
        """
        INSERT INTO workspaces VALUES ('ws_b', 'B', 1);
        INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref,
                              status, created_at, workspace_id, secret, deleted_at)
        VALUES ('ch_a', 'facebook', 'page-1', 'A', 'Europe/Paris', 'vault:', 'active', 10,
                'ws_default', x'00ff10', NULL),
               ('ch_b', 'instagram', 'ig-1', 'B', 'UTC', 'env:T', 'needs_reauth', 11, 'ws_b',
                NULL, NULL),
               ('ch_c', 'linkedin', 'urn:1', 'C', 'Asia/Tokyo', 'env:T', 'disabled', 12, 'ws_b',
                NULL, 99);
        INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref,
                              created_at)
        VALUES ('ch_d', 'youtube', 'UC1', 'D', 'UTC', 'file:/k', 13);
        INSERT INTO posts (id, content, overrides, created_at, workspace_id)
        VALUES ('p1', '{"text": "a"}', '{}', 20, 'ws_default'),
               ('p2', '{"text": "b"}', '{}', 21, 'ws_b');
        INSERT INTO deliveries (id, post_id, channel_id, platform, due_at, state,
                                next_attempt_at, attempts, external_id, updated_at)
        VALUES ('d1', 'p1', 'ch_a', 'facebook', 30, 'published', NULL, 1, 'fb_1', 31),
               ('d2', 'p1', 'ch_d', 'youtube', 30, 'scheduled', 30, 0, NULL, 31),
               ('d3', 'p2', 'ch_b', 'instagram', 40, 'retry_wait', 45, 1, NULL, 41),
               ('d4', 'p2', 'ch_c', 'linkedin', 40, 'cancelled', NULL, 0, NULL, 99);
        INSERT INTO attempts (delivery_id, number, started_at, finished_at, outcome)
        VALUES ('d1', 1, 30, 31, 'published'), ('d3', 1, 40, 41, 'rate_limited');
        INSERT INTO posting_slots VALUES ('ch_a', 0, 540), ('ch_a', 4, 1050), ('ch_b', 6, 0);
        INSERT INTO webhooks (id, workspace_id, url, events, secret, created_at)
        VALUES ('wh_1', 'ws_b', 'https://b.test/h', '["delivery.failed"]', x'01', 50);
        """
    )


SEEDED = ("workspaces", "channels", "posts", "deliveries", "attempts", "posting_slots", "webhooks")


def _rows(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in SEEDED}


def _by_name(conn: sqlite3.Connection, table: str) -> list[dict[str, object]]:
    """Rows as column -> value: the rebuilt table may order its columns differently."""
    cursor = conn.execute(f"SELECT * FROM {table} ORDER BY id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def test_migration_3_keeps_every_channel_and_every_reference(tmp_path):
    conn = _at_version(tmp_path / "h.db", REBUILD - 1)
    try:
        _seed_version_2(conn)
        before, channels = _rows(conn), _by_name(conn, "channels")
        applied = apply_migrations(conn, target=REBUILD)  # later ones may add columns
        assert applied == ["0003_channel_account_per_workspace.sql"]
        assert _by_name(conn, "channels") == channels
        after = _rows(conn)
        for table in before.keys() - {"channels"}:
            assert after[table] == before[table], table
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA defer_foreign_keys").fetchone() == (0,)
        assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        # References still lead to channels: a delivery cannot name a missing one...
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO deliveries (id, post_id, channel_id, platform, due_at, updated_at) "
                "VALUES ('d9', 'p1', 'ch_nope', 'facebook', 1, 1)"
            )
        # ...nor can a channel with deliveries or slots go away.
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("DELETE FROM channels WHERE id = 'ch_a'")
        # The account of ch_a may now be connected by another workspace, not twice in its own.
        insert = (
            "INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref, "
            "created_at, workspace_id) VALUES (?, 'facebook', 'page-1', 'n', 'UTC', 'env:T', 1, ?)"
        )
        conn.execute(insert, ("ch_e", "ws_b"))
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(insert, ("ch_f", "ws_default"))
    finally:
        conn.close()


def test_migration_3_refuses_to_commit_if_a_reference_would_dangle(tmp_path, monkeypatch):
    """The rebuild's safety net: a channel lost on the way fails the COMMIT (deferred foreign
    keys), and the runner rolls the database back to version 2 with every row."""
    real = sqlite_conn._migration_files()
    lossy = [
        (v, n, s.replace("FROM temp.channels_copy;", "FROM temp.channels_copy WHERE id <> 'ch_b';"))
        for v, n, s in real
    ]
    assert lossy != real  # the damage applies
    conn = _at_version(tmp_path / "h.db", REBUILD - 1)
    try:
        _seed_version_2(conn)
        before = _rows(conn)
        monkeypatch.setattr(sqlite_conn, "_migration_files", lambda: lossy)
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            apply_migrations(conn)
        assert not conn.in_transaction
        assert _rows(conn) == before
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
        assert versions == [1, 2]
    finally:
        conn.close()
