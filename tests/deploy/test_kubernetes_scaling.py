"""deploy/kubernetes: the autoscalers can reach their most pods (broker.max_queued lets the
backlog grow that far), the single-region scalers watch herald-config's region wherever it is
set, and each region's workers run on that region's nodes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.deploy import kube_policies as policies
from tests.deploy.kube_render import (
    KUBERNETES,
    OVERLAYS,
    Obj,
    config,
    kubectl,
    name,
    of_kind,
    overlay_names,
    pod_spec,
    render,
    workers,
)

pytestmark = pytest.mark.skipif(
    kubectl() is None, reason="kubectl is not installed (scripts/tools.sh installs it)"
)

SINGLE_REGION = ["hpa", "single-region", "single-region-redis-streams"]


@pytest.mark.parametrize("overlay", overlay_names())
def test_every_overlay_s_scalers_can_reach_their_most_pods(overlay: str):
    objects = render(OVERLAYS / overlay)
    assert policies.reach(objects) == []


@pytest.mark.parametrize("overlay", overlay_names())
def test_herald_s_default_max_queued_is_found_to_cap_the_scalers(overlay: str):
    objects = render(OVERLAYS / overlay)
    del config(objects)["HERALD_BROKER__MAX_QUEUED"]  # Herald's default, 2000
    [problem] = policies.reach(objects)
    assert "max_queued is 2000" in problem


def test_a_scaler_raised_past_max_queued_is_found():
    objects = render(OVERLAYS / "single-region")
    of_kind(objects, "ScaledObject")[0]["spec"]["maxReplicaCount"] = 250
    assert policies.reach(objects) != []


def test_a_target_in_jobs_taken_for_messages_is_found():
    # 50 a pod, as the HPA counts jobs, would be 400 jobs a pod in RabbitMQ messages.
    objects = render(OVERLAYS / "single-region")
    for scaler in of_kind(objects, "ScaledObject"):
        scaler["spec"]["triggers"][0]["metadata"]["value"] = "50"
    assert policies.reach(objects) != []


def _regions_of_triggers(objects: list[Obj]) -> set[str]:
    found = set()
    for scaler in of_kind(objects, "ScaledObject"):
        meta = scaler["spec"]["triggers"][0]["metadata"]
        found.add((meta.get("queueName") or meta["stream"]).replace(":", ".").split(".")[4])
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        found.add(
            hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]["region"]
        )
    return found


@pytest.mark.parametrize("overlay", SINGLE_REGION)
def test_the_scalers_follow_herald_config_s_region(overlay: str, tmp_path: Path):
    # A copy of deploy/kubernetes with HERALD_REGION changed in herald-config, and nowhere else.
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    configmap = copy / "core" / "configmap.yaml"
    document = yaml.safe_load(configmap.read_text())
    assert document["data"]["HERALD_REGION"] == "default"
    document["data"]["HERALD_REGION"] = "eu-central-1"
    configmap.write_text(yaml.safe_dump(document))
    objects = render(copy / "overlays" / overlay)
    assert config(objects)["HERALD_REGION"] == "eu-central-1"
    assert _regions_of_triggers(objects) == {"eu-central-1"}
    assert policies.triggers(objects) == []


def test_each_region_s_workers_run_on_its_nodes():
    objects = render(OVERLAYS / "multi-region")
    placed = {name(w): pod_spec(w)["nodeSelector"][policies.REGION_LABEL] for w in workers(objects)}
    assert len(placed) == 16
    assert all(worker.endswith(f"-{region}") for worker, region in placed.items())


@pytest.mark.parametrize(
    "plant",
    [
        lambda w: pod_spec(w).pop("nodeSelector"),
        lambda w: pod_spec(w)["nodeSelector"].update({policies.REGION_LABEL: "us-east-1"}),
    ],
    ids=["no nodeSelector", "another region's nodes"],
)
def test_a_worker_placed_off_its_region_is_found(plant):
    objects = render(OVERLAYS / "multi-region")
    assert policies.placement(objects) == []
    worker = next(w for w in workers(objects) if name(w) == "herald-worker-youtube-eu-west-1")
    plant(worker)
    [problem] = policies.placement(objects)
    assert problem.startswith("herald-worker-youtube-eu-west-1: reads eu-west-1")
