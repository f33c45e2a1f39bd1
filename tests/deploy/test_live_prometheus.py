"""Every dashboard query, and every rule of deploy/prometheus/rules.yaml, evaluated by a real
Prometheus scraping a real deployment (deploy/grafana/live.py: `herald serve`, a dispatcher
and two workers on Redis Streams, publishing to the simulator), must return data: a query on
a misspelt name, a wrong label or a join that matches nothing shows an empty panel in Grafana
and fails here."""

from __future__ import annotations

import asyncio
import math
import re
import shutil
import time
from typing import Any

import pytest
import yaml
from deploy.grafana.live import RULES, LiveDeployment
from deploy.grafana.queries import dashboards, metric_names, queries, substitute, variables

from herald.domain import Platform

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

#: The values the variables take here: a platform and a region the deployment publishes in.
VALUES = {"platform": "facebook", "region": "eu-west-1"}
#: Grafana's $__rate_interval, as wide as the whole run: every counter has two samples in it.
RATE_WINDOW = "1m"

#: A counter with labels has no series until its first event, and a warning of a retiring or
#: retired API version (labelled by version and reason) is not made here: a query on it alone
#: may return nothing, and is checked instead against the TYPE lines of what Prometheus
#: scraped, so that its name is still proven to be one a process exports.
EVENT_ONLY = frozenset({"herald_platform_version_warnings_total"})

#: A comparison with a number (``> 300``, ``== 0``, ``< bool 30``): an alert's threshold.
_THRESHOLD = re.compile(
    r"\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.:])"
)
_SET_OPERATOR = re.compile(r"\s(?:and|or|unless)\s")


def selector(expr: str) -> str:
    """An alert's selector: its expression without thresholds, up to its first top-level
    ``and``/``or``/``unless`` (``absent(x)``: ``x``). Data there means the alert watches
    series that exist; whether it fires is the rules' own tests' business."""
    expr = _THRESHOLD.sub("", " ".join(expr.split()))
    depth = 0
    for index, char in enumerate(expr):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0 and _SET_OPERATOR.match(expr, index):
            expr = expr[:index]
            break
    expr = expr.strip()
    match = re.fullmatch(r"absent(?:_over_time)?\((.*)\)", expr)
    return match.group(1) if match else expr


def rule_queries() -> list[tuple[str, str]]:
    """(name, PromQL) of every recording rule (its recorded series) and alert (its selector)."""
    if not RULES.exists():
        return []
    found = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                found.append((f"record {rule['record']}", rule["record"]))
            else:
                found.append((f"alert {rule['alert']}", selector(str(rule["expr"]))))
    return found


def has_data(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


async def exported_families(live: LiveDeployment) -> set[str]:
    """Every family a scraped process declares (TYPE lines), as Prometheus saw them."""
    data = await live.prometheus("/api/v1/targets/metadata", limit="100000")
    return {entry["metric"] for entry in data}


async def failing(live: LiveDeployment, exprs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (what, PromQL) of ``exprs`` that return no number now."""
    bad = []
    for what, expr in exprs:
        result = (await live.prometheus("/api/v1/query", query=expr))["result"]
        if not has_data(result):
            bad.append((what, expr))
    return bad


async def variables_without_values(live: LiveDeployment) -> list[tuple[str, str]]:
    """The variables whose own query does not offer the value substituted for them."""
    bad = []
    for name, model in dashboards().items():
        for variable, query in variables(model).items():
            match = re.fullmatch(r"label_values\((\w+), (\w+)\)", query)
            assert match, f"{name}: ${variable}: {query}"
            metric, label = match.groups()
            offered = await live.prometheus(f"/api/v1/label/{label}/values", **{"match[]": metric})
            if VALUES[variable] not in offered:
                bad.append((f"{name} ${variable} offers {offered}", query))
    return bad


def dashboard_queries() -> list[tuple[str, str]]:
    found = []
    for name, model in dashboards().items():
        for query in queries(name, model):
            what = f"{name} / {query.panel} / {query.ref}"
            found.append((what, substitute(query.expr, VALUES, RATE_WINDOW)))
    return found


@pytest.mark.timeout(150)
async def test_every_dashboard_query_and_rule_returns_data_from_a_live_deployment(tmp_path):
    if shutil.which("prometheus") is None:
        pytest.fail(
            "prometheus is not installed: apt-get install -y prometheus (scripts/tools.sh "
            "installs it for make test)",
            pytrace=False,
        )
    exprs = dashboard_queries() + rule_queries()
    async with LiveDeployment(tmp_path) as live:
        await live.publish(posts=30, over_s=20)
        await live.publish(posts=1, over_s=0, late_s=60)  # expires unsent
        # Facebook away for a few seconds: requests not sent, then an outage.
        await live.take_down(Platform.FACEBOOK, for_s=4)
        deadline = time.monotonic() + 45
        while True:
            bad = await failing(live, exprs) + await variables_without_values(live)
            unexplained, event_only = explain(bad, await exported_families(live))
            if not unexplained or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)  # the next scrapes
    print("no event here, declared by a process:", *event_only, sep="\n  ")
    assert not unexplained, "without data:\n" + "\n".join(unexplained)


def explain(bad: list[tuple[str, str]], families: set[str]) -> tuple[list[str], list[str]]:
    """``bad`` split: those not explained, and those on event-only counters that a process
    declares (their name is right; they have no series until their first event)."""
    unexplained, event_only = [], []
    for what, expr in bad:
        names = metric_names(expr)
        line = f"{what}: {expr}"
        explained = bool(names) and names <= EVENT_ONLY and names <= families
        (event_only if explained else unexplained).append(line)
    return unexplained, event_only
