"""The stores' SQL files: named queries from ``stores/sql/<dialect>.sql`` (``-- name: <name>``
blocks) and migrations from ``stores/migrations/<dialect>/NNNN_*.sql``.

The named queries name the sets of :mod:`herald.states` they need by placeholder, filled in
here when they are loaded: ``{CLAIMABLE}``, ``{CANCELLABLE}``, ``{IN_FLIGHT}``,
``{UNRESOLVED}``, ``{DROPPED}`` as SQL literals; ``{TRANSITIONS}``: every allowed
``(target, source)`` pair; ``{SOURCES}``: the states one target may be entered from (see
:func:`for_each_target`). No statement keeps a list of states of its own, so none can drift
from the state machine (tests/unit/test_states.py reads the files to make sure).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from importlib.resources import files

from herald.states import (
    CANCELLABLE,
    CLAIMABLE,
    DROPPED,
    IN_FLIGHT,
    UNRESOLVED,
    DeliveryState,
    allowed_sources,
)

__all__ = ["for_each_target", "load_queries", "migration_files", "state_list"]

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_SOURCES = "{SOURCES}"


def state_list(states: Iterable[DeliveryState]) -> str:
    """``'scheduled', 'retry_wait'``: states as SQL literals, in the order DeliveryState
    declares them. Always that order: SQLite uses a partial index only for a query that
    repeats the index's condition as written (stores/schema/sqlite.sql)."""
    wanted = set(states)
    return ", ".join(f"'{s.value}'" for s in DeliveryState if s in wanted)


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
    }


@cache
def load_queries(dialect: str) -> dict[str, str]:
    text = files("herald.stores").joinpath("sql", f"{dialect}.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        sql = "\n".join(lines).strip().rstrip(";")
        for key, value in _state_sets().items():
            sql = sql.replace(key, value)
        queries[name] = sql
    return queries


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
