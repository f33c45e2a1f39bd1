"""overlays/data-residency: one kustomization per region's cluster (us-east-1, eu-west-1).
Each keeps the rules of kube_residency (its engines on its own region and database, the
regions' settings from the Secret, its own migration Job, the API reaching every database), and
each of those rules is shown failing on a rendered copy with a violation planted. The rules
every overlay keeps (kube_policies) are test_kubernetes_manifests'.

No cluster runs here: these are the manifests as each region's API server would receive them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from unittest.mock import patch

import pytest

from herald.config import Settings
from tests.deploy import kube_residency as residency
from tests.deploy.kube_render import (
    KUBERNETES,
    OVERLAYS,
    Obj,
    config,
    kubectl,
    load,
    name,
    of_kind,
    pod_spec,
    render,
    workers,
    workloads,
)

pytestmark = pytest.mark.skipif(
    kubectl() is None, reason="kubectl is not installed (scripts/tools.sh installs it)"
)

OVERLAY = OVERLAYS / "data-residency"
Plant = Callable[[list[Obj]], None]


def _render(region: str) -> list[Obj]:
    return render(OVERLAY / region)


def _other(region: str) -> str:
    [other] = [r for r in residency.REGIONS if r != region]
    return other


def _by_name(objects: list[Obj], kind: str, wanted: str) -> Obj:
    return next(o for o in of_kind(objects, kind) if name(o) == wanted)


def _args(obj: Obj) -> list[str]:
    return [str(a) for a in pod_spec(obj)["containers"][0]["args"]]


def test_the_regions_are_the_overlay_s_directories():
    kustomizations = sorted(p.parent.name for p in OVERLAY.glob("*/kustomization.yaml"))
    assert kustomizations == sorted([*residency.REGIONS, "residency"])


@pytest.mark.parametrize("region", residency.REGIONS)
@pytest.mark.parametrize("rule", sorted(residency.ALL))
def test_each_region_keeps_the_residency_rules(region: str, rule: str):
    assert residency.ALL[rule](_render(region)) == []


@pytest.mark.parametrize("region", residency.REGIONS)
def test_each_region_s_engines_run_with_its_own_region(region: str):
    objects = _render(region)
    assert config(objects)["HERALD_REGION"] == region
    engines = [o for o in of_kind(objects, "Deployment") if name(o) != "herald-api"]
    assert len(engines) == 5  # the dispatcher, a worker per platform
    assert {tuple(_args(e)[-2:]) for e in engines} == {("--region", region)}
    assert {name(w) for w in workers(objects)} == {
        f"herald-worker-{p}" for p in ("facebook", "instagram", "linkedin", "youtube")
    }
    scalers = of_kind(objects, "ScaledObject")
    queues = {s["spec"]["triggers"][0]["metadata"]["queueName"] for s in scalers}
    assert {q.rsplit(".", 1)[1] for q in queues} == {region}


@pytest.mark.parametrize("region", residency.REGIONS)
def test_the_api_and_migration_read_the_regions_the_engines_their_own_database(region: str):
    for obj in workloads(_render(region)):
        env = {e["name"]: e for e in pod_spec(obj)["containers"][0]["env"]}
        if name(obj) in ("herald-api", "herald-migrate"):
            refs = {
                variable: env[variable]["valueFrom"]["secretKeyRef"]
                for variable in residency.SECRET_KEYS
            }
            assert refs == {
                "HERALD_REGIONS": {"name": "herald-secrets", "key": "regions"},
                "HERALD_DIRECTORY_URL": {"name": "herald-secrets", "key": "directory-url"},
            }
            assert "HERALD_DATABASE_URL" not in env
        else:
            # Every region's database passwords stay out of the engines' pods.
            assert not set(residency.SECRET_KEYS) & env.keys(), name(obj)
            assert env["HERALD_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
                "name": "herald-secrets",
                "key": "database-url",
            }


@pytest.mark.parametrize("region", residency.REGIONS)
def test_the_example_secret_s_regions_are_settings_herald_accepts(region: str):
    # The same two values in both clusters' Secrets: each region's processes find their own
    # database in them, and the API every other region's.
    [secret] = load(KUBERNETES / "secret.example.yaml")
    data = secret["stringData"]
    env = {
        "HERALD_REGIONS": data["regions"],
        "HERALD_DIRECTORY_URL": data["directory-url"],
        "HERALD_LIMITS__REDIS_URL": data["redis-url"],
        **config(_render(region)),
    }
    with patch.dict(os.environ, env, clear=True):
        settings = Settings()
    assert sorted(settings.regions) == sorted(residency.REGIONS)
    assert settings.region == region
    assert settings.database_url == json.loads(data["regions"])[region]["database_url"]
    assert settings.api.other_regions == "serve"


@pytest.mark.parametrize("region", residency.REGIONS)
def test_each_region_runs_its_own_migration_job(region: str):
    objects = _render(region)
    [job] = of_kind(objects, "Job")
    assert (name(job), _args(job)) == ("herald-migrate", ["migrate"])
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert residency.reached(objects, labels) == ({*residency.REGIONS, "directory"}, [])


@pytest.mark.parametrize("region", residency.REGIONS)
def test_the_workers_cannot_reach_the_other_region_s_database(region: str):
    objects = _render(region)
    for worker in [*workers(objects), _by_name(objects, "Deployment", "herald-dispatcher")]:
        labels = worker["spec"]["template"]["metadata"]["labels"]
        assert residency.reached(objects, labels) == ({region}, [])
    # What the other region's database policy lets in: nothing of this cluster's engines.
    other = _by_name(objects, "NetworkPolicy", f"herald-database-{_other(region)}-engines")
    assert other["spec"]["podSelector"]["matchLabels"]["region"] == _other(region)


@pytest.mark.parametrize("region", residency.REGIONS)
def test_the_api_reaches_every_database_and_the_directory(region: str):
    objects = _render(region)
    labels = _by_name(objects, "Deployment", "herald-api")["spec"]["template"]["metadata"]
    assert residency.reached(objects, labels["labels"]) == ({*residency.REGIONS, "directory"}, [])


def test_the_two_clusters_differ_by_their_region_only():
    # Both render the same databases' addresses and, but for the region's name, the same
    # objects (the database policies name both regions in both clusters).
    renders = {region: _render(region) for region in residency.REGIONS}
    addresses = [residency.database_addresses(objects) for objects in renders.values()]
    assert addresses[0] == addresses[1]

    def masked(region: str) -> list[str]:
        return sorted(
            json.dumps(obj, sort_keys=True).replace(region, "<region>")
            for obj in renders[region]
            if not name(obj).startswith("herald-database-")
        )

    assert masked("us-east-1") == masked("eu-west-1")


# -- each rule, broken on purpose ---------------------------------------------------------------


def _env_of(objects: list[Obj], deployment: str) -> list[Obj]:
    env: list[Obj] = pod_spec(_by_name(objects, "Deployment", deployment))["containers"][0]["env"]
    return env


def _policy(objects: list[Obj], policy: str) -> Obj:
    return _by_name(objects, "NetworkPolicy", policy)


VIOLATIONS: list[tuple[str, str, Plant]] = [
    (
        "engines_in_region",
        "a worker of us-east-1 started for eu-west-1",
        lambda o: _args_set(o, "herald-worker-linkedin", -1, "eu-west-1"),
    ),
    (
        "engines_in_region",
        "a dispatcher without --region",
        lambda o: pod_spec(_by_name(o, "Deployment", "herald-dispatcher"))["containers"][0].update(
            args=["dispatcher"]
        ),
    ),
    (
        "engines_in_region",
        "an API on the other region's nodes",
        lambda o: pod_spec(_by_name(o, "Deployment", "herald-api"))["nodeSelector"].update(
            {residency.REGION_LABEL: "eu-west-1"}
        ),
    ),
    (
        "regions_from_secret",
        "a database URL beside the regions",
        lambda o: _env_of(o, "herald-api").append(
            {
                "name": "HERALD_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "herald-secrets", "key": "database-url"}},
            }
        ),
    ),
    (
        "regions_from_secret",
        "every region's databases in a worker's pod",
        lambda o: _env_of(o, "herald-worker-youtube").append(
            {
                "name": "HERALD_REGIONS",
                "valueFrom": {"secretKeyRef": {"name": "herald-secrets", "key": "regions"}},
            }
        ),
    ),
    (
        "regions_from_secret",
        "the directory from another key",
        lambda o: next(e for e in _env_of(o, "herald-api") if e["name"] == "HERALD_DIRECTORY_URL")[
            "valueFrom"
        ]["secretKeyRef"].update(key="database-url"),
    ),
    (
        "regions_from_secret",
        "an API that redirects",
        lambda o: config(o).update(HERALD_API__OTHER_REGIONS="redirect"),
    ),
    ("migration", "no migration Job", lambda o: o.remove(of_kind(o, "Job")[0])),
    (
        "database_reach",
        "the other region's engine policy selecting this region's workers",
        lambda o: _policy(o, "herald-database-eu-west-1-engines")["spec"]["podSelector"][
            "matchLabels"
        ].update(region="us-east-1"),
    ),
    (
        "database_reach",
        "the database port back in the workers' own policy, to any address",
        lambda o: _policy(o, "herald-worker")["spec"]["egress"][0]["ports"].append(
            {"protocol": "TCP", "port": 5432}
        ),
    ),
    (
        "database_reach",
        "a home database range wide enough to hold the other's",
        lambda o: _policy(o, "herald-database-us-east-1-engines")["spec"]["egress"][0]["to"][0][
            "ipBlock"
        ].update(cidr="10.0.0.0/8"),
    ),
    (
        "database_reach",
        "the API cut off from the directory",
        lambda o: o.remove(_policy(o, "herald-directory")),
    ),
    (
        "database_reach",
        "the migration cut off from the other region's database",
        lambda o: _policy(o, "herald-database-eu-west-1")["spec"]["podSelector"][
            "matchExpressions"
        ][0].update(values=["api"]),
    ),
]


def _args_set(objects: list[Obj], deployment: str, index: int, value: str) -> None:
    pod_spec(_by_name(objects, "Deployment", deployment))["containers"][0]["args"][index] = value


@pytest.mark.parametrize(
    ("rule", "plant"),
    [(rule, plant) for rule, _, plant in VIOLATIONS],
    ids=[f"{rule}: {what}" for rule, what, _ in VIOLATIONS],
)
def test_each_rule_fails_on_a_planted_violation(rule: str, plant: Plant):
    objects = _render("us-east-1")
    assert residency.ALL[rule](objects) == []
    plant(objects)
    assert residency.ALL[rule](objects) != []
