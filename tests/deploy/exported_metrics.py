"""The metric names Herald exports, read from its code, and the names a PromQL expression reads.

Whatever watches Herald (rules, dashboards) may only name series Herald exports: a misspelt
name is not an error to Prometheus, just a query that never matches, and an alert that can
never fire. The names come from the package itself: every prometheus_client metric it declares
(``Counter("herald_...")``, ``GaugeMetricFamily(BACKLOG_METRIC, ...)``), found in its source,
turned into the names of the series it exposes (a histogram's ``_bucket``, ``_sum`` and
``_count``, an ``Info``'s ``_info``...). ``registry_names`` gives what a live registry exposes,
so the scan can be held against the registries themselves.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import promql_parser
from prometheus_client import CollectorRegistry

__all__ = ["exported_names", "promql_names", "registry_names"]

# prometheus_client's metric classes and collector families, by the kind of series they expose.
_KINDS = {
    "Counter": "counter",
    "CounterMetricFamily": "counter",
    "Gauge": "gauge",
    "GaugeMetricFamily": "gauge",
    "Histogram": "histogram",
    "HistogramMetricFamily": "histogram",
    "Summary": "summary",
    "SummaryMetricFamily": "summary",
    "Info": "info",
    "InfoMetricFamily": "info",
    "Enum": "gauge",
    "StateSetMetricFamily": "gauge",
}


def _series(name: str, kind: str) -> set[str]:
    """The names of the series a metric family of ``kind`` named ``name`` exposes (without
    ``_created``, which no rule reads)."""
    if kind == "counter":
        return {name.removesuffix("_total") + "_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count"}
    if kind == "info":
        return {name.removesuffix("_info") + "_info"}
    return {name}


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "herald_..."`` assignments (plain or annotated)."""
    found: dict[str, str] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            for target in targets:
                if isinstance(target, ast.Name):
                    found[target.id] = value.value
    return found


def _declarations(tree: ast.Module) -> Iterator[tuple[ast.expr, str]]:
    """(name argument, kind) of every metric constructed in ``tree``."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        kind = _KINDS.get(called or "")
        if kind is None:
            continue
        named = [kw.value for kw in node.keywords if kw.arg == "name"]
        argument = node.args[0] if node.args else (named[0] if named else None)
        if argument is not None:
            yield argument, kind


def exported_names(package: Path) -> set[str]:
    """The series names of every metric declared under ``package`` (a source tree)."""
    trees = [ast.parse(path.read_text(), str(path)) for path in sorted(package.rglob("*.py"))]
    constants: dict[str, str] = {}
    for tree in trees:  # constants may be imported from another module (BACKLOG_METRIC)
        constants.update(_string_constants(tree))
    names: set[str] = set()
    for tree in trees:
        for argument, kind in _declarations(tree):
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                name = argument.value
            elif isinstance(argument, ast.Name) and argument.id in constants:
                name = constants[argument.id]
            else:
                continue  # a name built at run time: none of Herald's are
            if name.startswith("herald_"):
                names |= _series(name, kind)
    return names


def registry_names(registry: CollectorRegistry) -> set[str]:
    """The series names ``registry`` exposes now (``_created`` left out, as above)."""
    return {
        sample.name
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def promql_names(expr: str) -> set[str]:
    """The metric names the PromQL ``expr`` selects (``foo{...}`` and ``{__name__="foo"}``)."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.update(_selected(node))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def _selected(node: promql_parser.VectorSelector) -> Iterable[str]:
    if node.name:
        yield node.name
    for matcher in node.matchers.matchers:
        if matcher.name == "__name__" and matcher.op == promql_parser.MatchOp.Equal:
            yield matcher.value
