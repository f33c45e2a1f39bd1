"""The queries of the generated dashboards, read back from their JSON, with Grafana's
variables filled in: what the live test evaluates and ``snapshot.py`` plots."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Query", "dashboards", "metric_names", "panels", "queries", "substitute", "variables"]

DASHBOARDS = Path(__file__).parent / "dashboards"

#: Metric names as they appear in PromQL (label names inside braces and "by (...)" lists are
#: not metric names; ``_bucket`` belongs to its histogram).
_NAME = re.compile(r"\bherald_[a-z0-9_]+")
_HISTOGRAM_PARTS = ("_bucket", "_count", "_sum")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str
    legend: str


def dashboards(where: Path = DASHBOARDS) -> dict[str, dict[str, Any]]:
    """Every committed dashboard's JSON, by file name (without ``.json``)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(where.glob("*.json"))}


def panels(model: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The dashboard's panels, rows left out (they hold no query)."""
    for panel in model.get("panels", []):
        if panel.get("type") != "row":
            yield panel


def queries(name: str, model: Mapping[str, Any]) -> Iterator[Query]:
    for panel in panels(model):
        for target in panel.get("targets", []):
            yield Query(
                name, panel["title"], target["refId"], target["expr"], target["legendFormat"]
            )


def variables(model: Mapping[str, Any]) -> dict[str, str]:
    """The dashboard's query variables: name to its ``label_values(...)`` query."""
    found = {}
    for variable in model.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            found[variable["name"]] = variable["query"]
    return found


def substitute(expr: str, values: Mapping[str, str], rate_window: str) -> str:
    """``expr`` with ``$name`` replaced by ``values[name]`` and Grafana's rate window by
    ``rate_window`` (a PromQL duration)."""
    expr = expr.replace("$__rate_interval", rate_window)
    for name, value in values.items():
        expr = expr.replace(f"${name}", value)
    if "$" in expr:
        raise ValueError(f"a variable is left in {expr!r}")
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` reads, histograms by their family's name."""
    names = set()
    for found in _NAME.findall(expr):
        family = found
        for suffix in _HISTOGRAM_PARTS:
            family = family.removesuffix(suffix)
        names.add(family)
    return names
