"""The Grafana dashboards are generated (deploy/grafana/generate.py): the committed JSON is
exactly what the generator writes, every panel queries something, and every metric a query
reads is one of the agreed names (docs/operations.md, "Metrics")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy.grafana import generate
from deploy.grafana.queries import dashboards, metric_names, panels, queries, variables

import herald
from tests.deploy.exported_metrics import exported_names, promql_names

#: The metrics contract: every name a Herald role exports (existing and new).
CONTRACT = frozenset(
    [
        "herald_deliveries_total",
        "herald_publish_duration_seconds",
        "herald_delivery_lateness_seconds",
        "herald_queue_depth",
        "herald_queue_backlog",
        "herald_in_flight_deliveries",
        "herald_rate_limit_waits_total",
        "herald_retries_total",
        "herald_requests_not_sent_total",
        "herald_platform_outage",
        "herald_platform_version_retires_in_days",
        "herald_platform_version_warnings_total",
        "herald_claimed_deliveries_total",
        "herald_store_up",
        "herald_store_unavailable_total",
        "herald_api_requests_total",
        "herald_api_request_duration_seconds",
        "herald_store_deliveries",
        "herald_process_info",
        "herald_rate_limit_grants_total",
        "herald_delivery_sent_lateness_seconds",
        "herald_quota_used",
        "herald_quota_allowed",
        "herald_lease_recoveries_total",
        "herald_webhook_backlog",
        "herald_webhook_deliveries_total",
        "herald_channels_needing_reauth",
        "herald_broker_up",
        "herald_broker_errors_total",
        "herald_limiter_up",
        "herald_limiter_errors_total",
    ]
)

COMMITTED = dashboards()


def test_the_committed_json_is_what_the_generator_writes():
    assert sorted(COMMITTED) == sorted(generate.DASHBOARDS)
    for name, board in generate.DASHBOARDS.items():
        path = generate.OUT / f"{name}.json"
        assert path.read_text() == generate.render(board), (
            f"{path} differs from the generator: run python deploy/grafana/generate.py"
        )


def test_there_is_an_overview_one_per_platform_one_per_region_and_limits():
    assert set(COMMITTED) == {"overview", "platform", "region", "limits"}
    assert set(variables(COMMITTED["platform"])) == {"platform"}
    assert set(variables(COMMITTED["region"])) == {"region"}


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_every_panel_has_a_query_and_a_unique_id(name):
    model = COMMITTED[name]
    found = list(panels(model))
    assert found, f"{name} has no panel"
    for panel in found:
        exprs = [target.get("expr", "").strip() for target in panel.get("targets", [])]
        assert exprs, f"{name}: panel {panel['title']!r} has no query"
        assert all(exprs), f"{name}: panel {panel['title']!r} has an empty query"
        assert panel["datasource"]["uid"] == "${datasource}"
    ids = [panel["id"] for panel in model["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_queries_read_only_agreed_metrics_and_declared_variables(name):
    model = COMMITTED[name]
    declared = set(variables(model)) | {"datasource", "__rate_interval"}
    for query in queries(name, model):
        names = metric_names(query.expr)
        assert names, f"{query.panel}: {query.expr} reads no Herald metric"
        assert names <= CONTRACT, f"{query.panel}: not in the contract: {names - CONTRACT}"
        used = set(re.findall(r"\$(\w+)", query.expr))
        assert used <= declared, f"{query.panel}: undeclared {used - declared}"


def test_every_series_a_query_reads_is_one_herald_declares():
    """Held against the package's own declarations (as the alert rules are), and read by
    Prometheus' own PromQL parser: a name Herald does not export draws an empty panel."""
    exported = exported_names(Path(herald.__file__).parent)
    for name, model in COMMITTED.items():
        for query in queries(name, model):
            read = promql_names(query.expr.replace("$__rate_interval", "1m"))
            assert read, f"{name} / {query.panel}: {query.expr}"
            assert read <= exported, f"{name} / {query.panel}: {sorted(read - exported)}"
