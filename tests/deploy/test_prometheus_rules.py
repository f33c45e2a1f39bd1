"""deploy/prometheus/rules.yaml: checked and unit-tested by the real promtool, every alert
tested, documented in docs/operations.md, and reading only series Herald exports.

promtool comes with Debian's ``prometheus`` package, which ``scripts/tools.sh`` installs for
``make test``. The unit tests themselves are deploy/prometheus/tests/*.yaml (promtool's format:
input series, then the alerts expected at given instants). Two planted faults show they can
fail: with every alert's expression made one that never fires, and with every ``for:``
removed, each alert's own tests must fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

import herald
from herald.api.metrics import ApiMetrics
from herald.domain import Platform
from herald.engine.metrics import Metrics
from herald.queues.metrics import QueueBacklog
from tests.deploy.exported_metrics import exported_names, promql_names, registry_names

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules.yaml"
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yaml"))
OPERATIONS = ROOT / "docs" / "operations.md"
RUNBOOKS_SECTION = "## Alerts and runbooks"
RUNBOOK_PREFIX = "https://github.com/herald-dev/herald/blob/main/docs/operations.md#"
SEVERITIES = {"page", "ticket"}
# Series Prometheus makes itself, not Herald.
PROMETHEUS_SERIES = {"up"}


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: scripts/tools.sh installs it (make test runs it)")
    return subprocess.run(
        [tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(document: Any) -> Iterator[dict[str, Any]]:
    for group in document["groups"]:
        yield from group["rules"]


def alerts(document: Any) -> list[dict[str, Any]]:
    return [rule for rule in rules(document) if "alert" in rule]


ALERTS = alerts(load(RULES))
ALERT_NAMES = [alert["alert"] for alert in ALERTS]


def failing_alerts(output: str) -> set[str]:
    """The alerts whose unit tests promtool reports failed (on its standard error)."""
    return set(re.findall(r"alertname: (\w+), time:", output))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces
    made hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_headings() -> list[str]:
    """The ``###`` headings of docs/operations.md's "Alerts and runbooks" section."""
    text = OPERATIONS.read_text()
    assert RUNBOOKS_SECTION in text.splitlines(), "docs/operations.md lost its runbooks section"
    section = text.split(f"\n{RUNBOOKS_SECTION}\n", 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]
    return re.findall(r"^### (.+)$", section, flags=re.MULTILINE)


def test_promtool_accepts_the_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {sum(1 for _ in rules(load(RULES)))} rules found" in checked.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", *map(str, UNIT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        document = load(path)
        assert document["rule_files"] == ["../rules.yaml"], path
        for case in document["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert set(ALERT_NAMES) - firing == set(), "alerts never expected to fire"
    assert set(ALERT_NAMES) - silent == set(), "alerts never expected to stay silent"
    assert (firing | silent) - set(ALERT_NAMES) == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    assert len(ALERT_NAMES) == len(set(ALERT_NAMES)), "two alerts with one name"
    for alert in ALERTS:
        name = alert["alert"]
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert annotations["summary"].strip(), name
        assert annotations["description"].strip(), name
        assert annotations["runbook_url"].startswith(RUNBOOK_PREFIX), name


def test_every_runbook_url_leads_to_its_runbook_and_every_runbook_to_an_alert() -> None:
    headings = runbook_headings()
    anchors = {github_anchor(heading) for heading in headings}
    for alert in ALERTS:
        anchor = alert["annotations"]["runbook_url"].removeprefix(RUNBOOK_PREFIX)
        assert anchor in anchors, f"{alert['alert']}: no heading of {RUNBOOKS_SECTION} is #{anchor}"
    assert sorted(headings) == sorted(ALERT_NAMES), "a runbook for each alert, and only those"


def test_the_code_scan_finds_what_the_registries_expose() -> None:
    """The names the rules are held against come from a scan of the source; it must see at
    least what the live registries expose."""
    engine, api = Metrics(), ApiMetrics()
    engine.deliveries.labels("facebook", "published").inc()
    engine.publish_seconds.labels("facebook").observe(0.2)
    api.observe("GET", "/v1/posts", 200, 0.01)
    backlog = CollectorRegistry()
    QueueBacklog(StaticBacklog()).register(backlog)
    live = set().union(*(registry_names(r) for r in (engine.registry, api.registry, backlog)))
    scanned = exported_names(Path(herald.__file__).parent)
    assert live - scanned == set()
    assert {"herald_publish_duration_seconds_bucket", "herald_queue_backlog"} <= scanned


def test_the_rules_read_only_series_herald_exports() -> None:
    document = load(RULES)
    exported = exported_names(Path(herald.__file__).parent)
    recorded = {rule["record"] for rule in rules(document) if "record" in rule}
    unknown = {
        (rule.get("alert") or rule["record"], name)
        for rule in rules(document)
        for name in promql_names(rule["expr"])
        if name not in exported | recorded | PROMETHEUS_SERIES
    }
    assert unknown == set()


def test_a_misspelt_series_is_caught() -> None:
    names = promql_names('max by (platform) (herald_queue_backlogg) > 0 and {__name__="upp"}')
    assert names == {"herald_queue_backlogg", "upp"}


def mutated(tmp_path: Path, change: Any) -> Path:
    """A copy of the rules and their unit tests, with ``change`` applied to every alert."""
    document = load(RULES)
    for alert in alerts(document):
        change(alert)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    shutil.copytree(PROMETHEUS / "tests", tmp_path / "tests")
    return tmp_path


def test_the_unit_tests_catch_an_alert_that_never_fires(tmp_path: Path) -> None:
    def never(alert: dict[str, Any]) -> None:
        alert["expr"] = "absent(vector(1))"  # always empty

    tested = promtool(
        "test", "rules", *(p.name for p in UNIT_TESTS), cwd=mutated(tmp_path, never) / "tests"
    )
    assert tested.returncode != 0
    assert failing_alerts(tested.stderr) == set(ALERT_NAMES)


def test_the_unit_tests_catch_an_alert_that_fires_too_soon(tmp_path: Path) -> None:
    waiting = {alert["alert"] for alert in ALERTS if "for" in alert}
    assert len(waiting) >= len(ALERTS) - 1  # all but the expiries, which are final at once

    def at_once(alert: dict[str, Any]) -> None:
        alert.pop("for", None)

    tested = promtool(
        "test", "rules", *(p.name for p in UNIT_TESTS), cwd=mutated(tmp_path, at_once) / "tests"
    )
    assert tested.returncode != 0
    assert failing_alerts(tested.stderr) == waiting


class StaticBacklog:
    """A queue's figures, as :class:`herald.queues.metrics.Backlogged` reads them."""

    def depths(self) -> dict[tuple[Platform, str], int]:
        return {(Platform.FACEBOOK, "eu"): 3}
