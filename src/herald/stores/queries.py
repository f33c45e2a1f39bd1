"""The stores' SQL files: named queries from ``stores/sql/<dialect>.sql`` (``-- name: <name>``
blocks) and migrations from ``stores/migrations/<dialect>/NNNN_*.sql``."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

__all__ = ["load_queries", "migration_files"]

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def load_queries(dialect: str) -> dict[str, str]:
    text = files("herald.stores").joinpath("sql", f"{dialect}.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.strip().splitlines() if not line.startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


def migration_files(dialect: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration of ``dialect``, in version order."""
    folder = files("herald.stores").joinpath("migrations", dialect)
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)
