"""Applying every SQLite migration yields the declared schema (stores/schema/sqlite.sql).

Both databases are read back through SQLite's own catalogue (columns with types, defaults and
keys; foreign keys; CHECK constraints; indexes with their columns and WHERE clauses) and
compared. PostgreSQL's twin is tests/integration/test_postgres_migrations.py.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import herald.stores
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
