"""deploy/kubernetes/prometheus/scrape-configs.yaml finds each role's pods under the job names
of the metrics contract, on the port they serve /metrics on; the hpa overlay's
prometheus-adapter rule serves the metric its HPAs read. The relabelling is evaluated here as
Prometheus does it (keep and replace, anchored regexes, values joined with ";"), on the pods the
overlays render."""

from __future__ import annotations

import re

import pytest
import yaml

from herald.queues.metrics import BACKLOG_METRIC
from tests.deploy.kube_render import (
    KUBERNETES,
    OVERLAYS,
    Obj,
    kubectl,
    name,
    of_kind,
    pod_spec,
    render,
)

pytestmark = pytest.mark.skipif(
    kubectl() is None, reason="kubectl is not installed (scripts/tools.sh installs it)"
)

JOBS = {"herald-api": "api", "herald-dispatcher": "dispatcher", "herald-worker": "worker"}


def _meta_name(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", text)


def _discovered(deployment: Obj, namespace: str) -> list[dict[str, str]]:
    """The targets Kubernetes pod discovery gives for one pod of ``deployment``: one per
    declared container port."""
    template = deployment["spec"]["template"]["metadata"]
    labels = {
        f"__meta_kubernetes_pod_label_{_meta_name(k)}": v for k, v in template["labels"].items()
    }
    annotations = {
        f"__meta_kubernetes_pod_annotation_{_meta_name(k)}": v
        for k, v in template.get("annotations", {}).items()
    }
    return [
        {
            "__address__": f"10.0.0.1:{port['containerPort']}",
            "__metrics_path__": "/metrics",
            "__meta_kubernetes_namespace": namespace,
            "__meta_kubernetes_pod_name": f"{name(deployment)}-abc12",
            **labels,
            **annotations,
        }
        for c in pod_spec(deployment)["containers"]
        for port in c.get("ports", [])
    ]


def _relabel(target: dict[str, str], rules: list[Obj]) -> dict[str, str] | None:
    for rule in rules:
        value = rule.get("separator", ";").join(target.get(s, "") for s in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if match is None:
                return None
        elif action == "replace":
            if match is not None:
                template = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
                target[rule["target_label"]] = match.expand(template)
        else:
            raise AssertionError(f"unexpected action {action}")
    return target


def _scraped(objects: list[Obj]) -> dict[str, set[tuple[str, str, str]]]:
    """Per job: (pod, address, path) of every target it keeps."""
    config = yaml.safe_load((KUBERNETES / "prometheus" / "scrape-configs.yaml").read_text())
    out: dict[str, set[tuple[str, str, str]]] = {}
    for job in config["scrape_configs"]:
        [sd] = job["kubernetes_sd_configs"]
        kept = set()
        for deployment in of_kind(objects, "Deployment"):
            for target in _discovered(deployment, deployment["metadata"]["namespace"]):
                if sd["role"] != "pod" or target["__meta_kubernetes_namespace"] not in sd.get(
                    "namespaces", {}
                ).get("names", [target["__meta_kubernetes_namespace"]]):
                    continue
                seen = _relabel(dict(target), job["relabel_configs"])
                if seen is not None:
                    kept.add((seen["pod"], seen["__address__"], seen["__metrics_path__"]))
        out[job["job_name"]] = kept
    return out


def _expected(objects: list[Obj]) -> dict[str, set[tuple[str, str, str]]]:
    """What each job should scrape: every pod of its role, on the port its process serves
    /metrics on (the API's port or the engine's probe port), at /metrics."""
    out: dict[str, set[tuple[str, str, str]]] = {job: set() for job in JOBS}
    for deployment in of_kind(objects, "Deployment"):
        role = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        port = "8080" if role == "api" else "9090"
        job = next(j for j, r in JOBS.items() if r == role)
        out[job].add((f"{name(deployment)}-abc12", f"10.0.0.1:{port}", "/metrics"))
    return out


@pytest.mark.parametrize("overlay", ["single-region", "multi-region", "data-residency/eu-west-1"])
def test_each_job_scrapes_every_pod_of_its_role_on_its_metrics_port(overlay: str):
    objects = render(OVERLAYS / overlay)
    assert _scraped(objects) == _expected(objects)


def test_a_pod_announcing_another_port_is_found():
    objects = render(OVERLAYS / "single-region")
    api = next(d for d in of_kind(objects, "Deployment") if name(d) == "herald-api")
    api["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] = "9090"
    assert _scraped(objects) != _expected(objects)


def test_a_worker_without_its_component_label_is_not_scraped():
    objects = render(OVERLAYS / "single-region")
    worker = next(d for d in of_kind(objects, "Deployment") if name(d) == "herald-worker-youtube")
    del worker["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
    assert _scraped(objects)["herald-worker"] < _expected(objects)["herald-worker"]


def test_only_the_api_job_sends_the_metrics_token():
    config = yaml.safe_load((KUBERNETES / "prometheus" / "scrape-configs.yaml").read_text())
    with_token = {job["job_name"] for job in config["scrape_configs"] if "authorization" in job}
    assert with_token == {"herald-api"}


def test_the_adapter_serves_the_metric_the_hpas_read_by_their_labels():
    rules = yaml.safe_load((OVERLAYS / "hpa" / "prometheus-adapter-rules.yaml").read_text())
    [rule] = rules["rules"]["external"]
    served = rule["name"]["as"]
    hpas = of_kind(render(OVERLAYS / "hpa"), "HorizontalPodAutoscaler")
    assert hpas
    for hpa in hpas:
        [metric] = hpa["spec"]["metrics"]
        assert metric["external"]["metric"]["name"] == served == BACKLOG_METRIC
        selected = set(metric["external"]["metric"]["selector"]["matchLabels"])
        grouped = re.search(r"by \(([^)]*)\)", rule["metricsQuery"])
        assert grouped is not None
        assert selected <= {label.strip() for label in grouped.group(1).split(",")}
    assert rule["seriesQuery"].startswith(BACKLOG_METRIC + "{")
