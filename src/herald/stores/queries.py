"""The stores' SQL files: named queries and migrations.

Named queries are ``-- name: <name>`` blocks in ``stores/sql/``: ``common.sql`` holds those
both dialects write alike, ``<dialect>.sql`` the rest. Their placeholders are filled in once,
when they are loaded:

- ``{delivery_columns}``, ``{channel_columns}``, ``{post_columns}``, ``{import_columns}``:
  the columns the decoders
  of :mod:`herald.stores.rows` read. ``{d.delivery_columns}`` qualifies them with a table
  alias; ``{c.channel_columns AS channel.}`` also names them ``"channel.<column>"``, as a
  joined table's columns are named;
- ``{CLAIMABLE}``, ``{CANCELLABLE}``, ``{IN_FLIGHT}``, ``{UNRESOLVED}``, ``{DROPPED}``: those
  sets of :mod:`herald.states` as SQL literals; ``{TRANSITIONS}``: every allowed
  ``(target, source)`` pair; ``{SOURCES}``: the states one target may be entered from (see
  :func:`for_each_target`). No statement keeps a list of states of its own, so none can drift
  from the state machine (tests/unit/test_states.py reads the files to make sure);
- ``{REPLAYABLE_EVENTS}``: the webhook event states a replay starts from
  (:data:`herald.domain.REPLAYABLE_EVENTS`);
- ``{INDEXED BY <index>}``: pins a SQLite query to its index; nothing on PostgreSQL.

Migrations are ``stores/migrations/<dialect>/NNNN_*.sql``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files
from types import MappingProxyType

from herald.domain import REPLAYABLE_EVENTS, WebhookEventState
from herald.states import (
    CANCELLABLE,
    CLAIMABLE,
    DROPPED,
    IN_FLIGHT,
    UNRESOLVED,
    DeliveryState,
    allowed_sources,
)
from herald.stores.rows import CHANNEL_COLUMNS, DELIVERY_COLUMNS, IMPORT_COLUMNS, POST_COLUMNS

__all__ = ["for_each_target", "load_queries", "migration_files", "state_list"]

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_COLUMNS = re.compile(r"\{(?:(\w+)\.)?(delivery|channel|post|import)_columns(?: AS ([\w.]+))?\}")
_INDEXED_BY = re.compile(r"\{INDEXED BY (\w+)\}")
# What a placeholder looks like: a name in braces ({CLAIMABLE}, {d.delivery_columns}...),
# not an array literal such as '{}' or '{1,2}'.
_LEFT = re.compile(r"\{[A-Za-z_][\w .]*\}")
_TABLES = {
    "delivery": DELIVERY_COLUMNS,
    "channel": CHANNEL_COLUMNS,
    "post": POST_COLUMNS,
    "import": IMPORT_COLUMNS,
}
_SOURCES = "{SOURCES}"


def state_list(states: Iterable[DeliveryState]) -> str:
    """``'scheduled', 'retry_wait'``: states as SQL literals, in the order DeliveryState
    declares them. Always that order: SQLite uses a partial index only for a query that
    repeats the index's condition as written (stores/schema/sqlite.sql)."""
    wanted = set(states)
    return ", ".join(f"'{s.value}'" for s in DeliveryState if s in wanted)


def _columns(match: re.Match[str]) -> str:
    alias, table, prefix = match.groups()
    qualified = [f"{alias}.{c}" if alias else c for c in _TABLES[table]]
    if prefix is None:
        return ", ".join(qualified)
    return ", ".join(
        f'{q} AS "{prefix}{c}"' for q, c in zip(qualified, _TABLES[table], strict=True)
    )


def _state_sets() -> dict[str, str]:
    pairs = ", ".join(
        f"('{target.value}', '{source.value}')"
        for target in DeliveryState
        for source in DeliveryState
        if source in allowed_sources(target)
    )
    return {
        "{CLAIMABLE}": state_list(CLAIMABLE),
        "{CANCELLABLE}": state_list(CANCELLABLE),
        "{IN_FLIGHT}": state_list(IN_FLIGHT),
        "{UNRESOLVED}": state_list(UNRESOLVED),
        "{DROPPED}": state_list(DROPPED),
        "{TRANSITIONS}": f"VALUES {pairs}",
        "{REPLAYABLE_EVENTS}": ", ".join(
            f"'{s.value}'" for s in WebhookEventState if s in REPLAYABLE_EVENTS
        ),
    }


def _fill(name: str, sql: str, dialect: str) -> str:
    sql = _COLUMNS.sub(_columns, sql)
    for key, value in _state_sets().items():
        sql = sql.replace(key, value)
    sql = _INDEXED_BY.sub(r"INDEXED BY \1" if dialect == "sqlite" else "", sql)
    left = [p for p in _LEFT.findall(sql) if p != _SOURCES]
    if left:
        raise ValueError(f"query {name} ({dialect}) has unknown placeholders: {left}")
    return sql


def _parse(filename: str) -> dict[str, str]:
    text = files("herald.stores").joinpath("sql", filename).read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


@cache
def load_queries(dialect: str) -> Mapping[str, str]:
    """Every named query of ``dialect`` (``sqlite``, ``postgres``), placeholders filled in.
    Read-only: every store of the dialect shares the one loaded copy."""
    common, own = _parse("common.sql"), _parse(f"{dialect}.sql")
    if both := common.keys() & own.keys():
        raise ValueError(f"queries named in common.sql and {dialect}.sql: {sorted(both)}")
    return MappingProxyType(
        {name: _fill(name, sql, dialect) for name, sql in (common | own).items()}
    )


def for_each_target(sql: str) -> dict[DeliveryState, str]:
    """``sql`` once per target state, its ``{SOURCES}`` the states that target may be entered
    from: a guarded write that names its target in the statement text."""
    return {t: sql.replace(_SOURCES, state_list(allowed_sources(t))) for t in DeliveryState}


def migration_files(dialect: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration of ``dialect``, in version order."""
    folder = files("herald.stores").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)
