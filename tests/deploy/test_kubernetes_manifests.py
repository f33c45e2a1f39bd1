"""deploy/kubernetes: every overlay renders with ``kubectl kustomize``, every object it renders
is valid against the Kubernetes API's schemas (KEDA's for KEDA's kinds), and keeps the rules of
kube_policies. Each rule is also shown failing on a rendered copy with a violation planted.

No cluster runs here: these are the manifests as an API server would receive them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy import kube_policies as policies
from tests.deploy.kube_render import (
    KUBERNETES,
    OVERLAYS,
    Obj,
    config,
    kubectl,
    load,
    name,
    of_kind,
    overlay_names,
    pod_spec,
    render,
    schema_errors,
    workers,
)

pytestmark = pytest.mark.skipif(
    kubectl() is None, reason="kubectl is not installed (scripts/tools.sh installs it)"
)

OVERLAY_NAMES = overlay_names()


@pytest.fixture(params=OVERLAY_NAMES)
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    return render(OVERLAYS / request.param)


def test_the_overlays_are_the_documented_ones():
    assert OVERLAY_NAMES == [
        "data-residency/eu-west-1",
        "data-residency/us-east-1",
        "hpa",
        "multi-region",
        "single-region",
        "single-region-redis-streams",
    ]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_object_is_valid_against_its_schema(overlay: str):
    objects = render(OVERLAYS / overlay)
    assert objects
    assert [problem for obj in objects for problem in schema_errors(obj)] == []


def _secret_keys(node: object) -> set[str]:
    """The keys of herald-secrets that ``node`` reads: env secretKeyRefs, KEDA
    secretTargetRefs."""
    if isinstance(node, list):
        return set().union(*map(_secret_keys, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    own = {node["key"]} if node.get("name") == "herald-secrets" and "key" in node else set()
    return own.union(*map(_secret_keys, node.values()))


def test_the_example_secret_is_valid_and_holds_what_the_pods_read():
    [secret] = load(KUBERNETES / "secret.example.yaml")
    assert schema_errors(secret) == []
    read = set().union(*(_secret_keys(render(OVERLAYS / o)) for o in OVERLAY_NAMES))
    assert read == set(secret["stringData"])
    assert set(policies.SECRET_SAMPLES) <= read


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
@pytest.mark.parametrize("rule", sorted(policies.ALL))
def test_every_overlay_keeps_the_rules(overlay: str, rule: str):
    assert policies.ALL[rule](render(OVERLAYS / overlay)) == []


@pytest.mark.parametrize(
    "overlay",
    [
        "single-region",
        "single-region-redis-streams",
        "hpa",
        # each region's cluster of a deployment with data residency is one region of its own
        "data-residency/us-east-1",
        "data-residency/eu-west-1",
    ],
)
def test_one_region_scales_each_platform_between_5_and_100(overlay: str):
    objects = render(OVERLAYS / overlay)
    assert len(workers(objects)) == 4
    assert policies.single_region_bounds(objects) == []


def test_four_regions_share_the_capacity_40_30_20_10():
    objects = render(OVERLAYS / "multi-region")
    assert len(workers(objects)) == 16
    assert policies.regions(objects) == []


def test_a_scaler_of_a_kind_unknown_to_the_schemas_is_refused():
    [scaled] = of_kind(render(OVERLAYS / "single-region"), "ScaledObject")[:1]
    scaled["spec"]["minReplicas"] = 5  # the HPA's word, not KEDA's
    assert any("minReplicas" in problem for problem in schema_errors(scaled))
    [deployment] = of_kind(render(OVERLAYS / "single-region"), "Deployment")[:1]
    pod_spec(deployment)["containers"][0]["resource"] = {}
    assert any("resource" in problem for problem in schema_errors(deployment))


# -- each rule, broken on purpose ---------------------------------------------------------------


def _worker(objects: list[Obj], platform: str = "youtube") -> Obj:
    return next(w for w in workers(objects) if w["metadata"]["labels"]["platform"] == platform)


def _container(obj: Obj) -> Obj:
    container: Obj = pod_spec(obj)["containers"][0]
    return container


def _api(objects: list[Obj]) -> Obj:
    return next(d for d in of_kind(objects, "Deployment") if name(d) == "herald-api")


def _dispatcher(objects: list[Obj]) -> Obj:
    return next(o for o in of_kind(objects, "Deployment") if name(o) == "herald-dispatcher")


def _migrate(objects: list[Obj]) -> Obj:
    [job] = of_kind(objects, "Job")
    return job


def _drop(obj: Obj, key: str) -> None:
    del obj[key]


def _set_args(objects: list[Obj], args: list[str]) -> None:
    _container(_worker(objects))["args"] = args


def _remove_scaler(objects: list[Obj]) -> None:
    scaler = next(o for o in objects if o["kind"] in ("ScaledObject", "HorizontalPodAutoscaler"))
    objects.remove(scaler)


def _second_scaler(objects: list[Obj]) -> None:
    scaler = next(o for o in objects if o["kind"] in ("ScaledObject", "HorizontalPodAutoscaler"))
    twin = copy.deepcopy(scaler)
    twin["metadata"]["name"] += "-twin"
    objects.append(twin)


def _retarget(objects: list[Obj], field: str, value: str) -> None:
    scaler = next(o for o in objects if o["kind"] == "ScaledObject")
    scaler["spec"]["triggers"][0]["metadata"][field] = value


def _open_worker_egress(objects: list[Obj]) -> None:
    policy = next(p for p in of_kind(objects, "NetworkPolicy") if name(p) == "herald-worker")
    policy["spec"]["egress"].append({"ports": [{"protocol": "TCP", "port": 80}]})


def _open_api_ingress(objects: list[Obj]) -> None:
    policy = next(p for p in of_kind(objects, "NetworkPolicy") if name(p) == "herald-api")
    policy["spec"]["ingress"].append({"ports": [{"protocol": "TCP", "port": 8080}]})


def _no_default_deny(objects: list[Obj]) -> None:
    deny = next(p for p in of_kind(objects, "NetworkPolicy") if name(p) == "herald-default-deny")
    objects.remove(deny)


Plant = Callable[[list[Obj]], None]


def _set_config(objects: list[Obj], key: str, value: str) -> None:
    config(objects)[key] = value


VIOLATIONS: list[tuple[str, str, Plant]] = [
    ("settings", "a misspelt setting", lambda o: _set_config(o, "HERALD_ENGINE__PROBE_HSOT", "x")),
    ("settings", "a section as a setting", lambda o: _set_config(o, "HERALD_ENGINE", "x")),
    ("settings", "an invalid value", lambda o: _set_config(o, "HERALD_LOG_FORMAT", "yaml")),
    (
        "settings",
        "a Secret key no one fills",
        lambda o: _container(_api(o))["env"][0]["valueFrom"]["secretKeyRef"].update(key="token"),
    ),
    ("probes", "no liveness", lambda o: _drop(_container(_worker(o)), "livenessProbe")),
    ("probes", "no readiness", lambda o: _drop(_container(_api(o)), "readinessProbe")),
    (
        "probes",
        "readiness on /healthz",
        lambda o: _container(_worker(o))["readinessProbe"]["httpGet"].update(path="/healthz"),
    ),
    (
        "probes",
        "a port nothing listens on",
        lambda o: _container(_api(o))["livenessProbe"]["httpGet"].update(port=9090),
    ),
    ("resources", "no limits", lambda o: _drop(_container(_worker(o))["resources"], "limits")),
    (
        "resources",
        "no memory request",
        lambda o: _drop(_container(_migrate(o))["resources"]["requests"], "memory"),
    ),
    ("security", "root", lambda o: _container(_api(o))["securityContext"].update(runAsUser=0)),
    (
        "security",
        "a user by name",
        lambda o: _container(_worker(o))["securityContext"].update(runAsUser="herald"),
    ),
    (
        "security",
        "writable root",
        lambda o: _container(_worker(o))["securityContext"].update(readOnlyRootFilesystem=False),
    ),
    (
        "security",
        "privilege escalation",
        lambda o: _drop(_container(_migrate(o))["securityContext"], "allowPrivilegeEscalation"),
    ),
    (
        "security",
        "capabilities kept",
        lambda o: _container(_api(o))["securityContext"]["capabilities"].update(drop=[]),
    ),
    (
        "security",
        "unconfined seccomp",
        lambda o: [
            ctx.update(seccompProfile={"type": "Unconfined"})
            for ctx in (
                pod_spec(_api(o))["securityContext"],
                _container(_api(o))["securityContext"],
            )
        ],
    ),
    ("security", "no /tmp", lambda o: _drop(_container(_worker(o)), "volumeMounts")),
    ("image", "latest", lambda o: _container(_api(o)).update(image="ghcr.io/herald/herald:latest")),
    (
        "command_lines",
        "an unknown option",
        lambda o: _set_args(o, ["worker", "--platforms", "youtube", "--concurency", "4"]),
    ),
    (
        "command_lines",
        "an unknown platform",
        lambda o: _set_args(o, ["worker", "--platforms", "tiktok", "--concurrency", "4"]),
    ),
    (
        "command_lines",
        "concurrency 0",
        lambda o: _set_args(o, ["worker", "--platforms", "youtube", "--concurrency", "0"]),
    ),
    (
        "command_lines",
        "another concurrency than the roadmap's",
        lambda o: _set_args(o, ["worker", "--platforms", "youtube", "--concurrency", "8"]),
    ),
    ("command_lines", "no such command", lambda o: _container(_api(o)).update(args=["apiserver"])),
    (
        "drain",
        "killed before the drain ends",
        lambda o: pod_spec(_worker(o)).update(terminationGracePeriodSeconds=30),
    ),
    (
        "drain",
        "killed during the worst-case stop (the old 2 x grace)",
        lambda o: pod_spec(_worker(o, "linkedin")).update(terminationGracePeriodSeconds=60),
    ),
    (
        "drain",
        "YouTube's own grace outlasting the pod's",
        lambda o: pod_spec(_worker(o)).update(terminationGracePeriodSeconds=630),
    ),
    (
        "platform_timeouts",
        "a YouTube upload cut at the shared 30 s",
        lambda o: _container(_worker(o)).update(
            env=[
                e
                for e in _container(_worker(o))["env"]
                if e["name"] != "HERALD_ENGINE__SHUTDOWN_GRACE_S"
            ]
        ),
    ),
    (
        "scoped_settings",
        "the engine's probe port in herald-config (the API's healthcheck probes it)",
        lambda o: _set_config(o, "HERALD_ENGINE__PROBE_PORT", "9090"),
    ),
    (
        "scoped_settings",
        "the secret keys in the dispatcher",
        lambda o: _container(_dispatcher(o))["env"].append(
            {
                "name": "HERALD_SECRET_KEYS",
                "valueFrom": {"secretKeyRef": {"name": "herald-secrets", "key": "secret-keys"}},
            }
        ),
    ),
    (
        "scoped_settings",
        "a worker without the secret keys",
        lambda o: _container(_worker(o)).update(
            env=[e for e in _container(_worker(o))["env"] if e["name"] != "HERALD_SECRET_KEYS"]
        ),
    ),
    (
        "gentle_scale_down",
        "YouTube's workers let go every minute (the shared behaviour)",
        lambda o: next(s for s in of_kind(o, "ScaledObject") if name(s) == "herald-worker-youtube")[
            "spec"
        ]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"].update(
            policies=[{"type": "Percent", "value": 10, "periodSeconds": 60}]
        ),
    ),
    ("one_scaler_each", "a worker without a scaler", _remove_scaler),
    ("one_scaler_each", "a worker with two", _second_scaler),
    ("network", "a worker reaching port 80", _open_worker_egress),
    ("network", "the API open to every pod", _open_api_ingress),
    ("network", "no default deny", _no_default_deny),
]

TRIGGER_VIOLATIONS: dict[str, tuple[str, Plant]] = {
    "single-region": (
        "a queue no worker reads",
        lambda o: _retarget(o, "queueName", "herald.v1.jobs.facebook.eu-west-1"),
    ),
    "single-region-redis-streams": (
        "another consumer group",
        lambda o: _retarget(o, "consumerGroup", "herald-workers"),
    ),
    "hpa": (
        "another region's backlog",
        lambda o: of_kind(o, "HorizontalPodAutoscaler")[0]["spec"]["metrics"][0]["external"][
            "metric"
        ]["selector"]["matchLabels"].update(region="us-east-1"),
    ),
    "multi-region": (
        "another region's queue",
        lambda o: _retarget(o, "queueName", "herald.v1.jobs.facebook.us-west-2"),
    ),
}


@pytest.mark.parametrize(
    ("rule", "plant"),
    [(rule, plant) for rule, _, plant in VIOLATIONS],
    ids=[f"{rule}: {what}" for rule, what, _ in VIOLATIONS],
)
def test_each_rule_fails_on_a_planted_violation(rule: str, plant: Plant):
    objects = render(OVERLAYS / "single-region")
    assert policies.ALL[rule](objects) == []
    plant(objects)
    assert policies.ALL[rule](objects) != []


@pytest.mark.parametrize("overlay", sorted(TRIGGER_VIOLATIONS))
def test_a_scaler_on_another_queue_is_found(overlay: str):
    objects = render(OVERLAYS / overlay)
    _, plant = TRIGGER_VIOLATIONS[overlay]
    plant(objects)
    assert policies.triggers(objects) != []


def test_a_scaler_on_the_other_broker_is_found():
    objects = render(OVERLAYS / "single-region-redis-streams")
    for worker in workers(objects):
        env = _container(worker)["env"]
        broker = next(e for e in env if e["name"] == "HERALD_BROKER__URL")
        broker["valueFrom"]["secretKeyRef"]["key"] = "rabbitmq-url"
    assert len(policies.triggers(objects)) == 4


def test_one_region_at_other_bounds_is_found():
    objects = render(OVERLAYS / "single-region")
    of_kind(objects, "ScaledObject")[0]["spec"]["maxReplicaCount"] = 50
    assert policies.single_region_bounds(objects) != []


@pytest.mark.parametrize(
    "plant",
    [
        # a worker of us-west-2 started for us-east-1
        lambda o: _container(
            next(w for w in workers(o) if name(w) == "herald-worker-linkedin-us-west-2")
        )["args"].__setitem__(-1, "us-east-1"),
        # a worker started without --region
        lambda o: _container(workers(o)[0]).update(
            args=[a for a in _container(workers(o)[0])["args"] if a != "--region"][:-1]
        ),
        # shares 50/20/20/10 at the most
        lambda o: [
            s["spec"].update(maxReplicaCount=s["spec"]["maxReplicaCount"] + 10)
            if s["metadata"]["name"] == "herald-worker-facebook-us-east-1"
            else s["spec"].update(maxReplicaCount=s["spec"]["maxReplicaCount"] - 10)
            if s["metadata"]["name"] == "herald-worker-facebook-us-west-2"
            else None
            for s in of_kind(o, "ScaledObject")
        ],
        # the least of one region out of proportion
        lambda o: of_kind(o, "ScaledObject")[-1]["spec"].update(minReplicaCount=5),
        # a region missing one platform
        lambda o: o.remove(next(w for w in workers(o) if name(w).endswith("youtube-eu-west-1"))),
    ],
    ids=["wrong region", "no --region", "shares at the most", "shares at the least", "missing"],
)
def test_four_regions_out_of_shape_are_found(plant: Plant):
    objects = render(OVERLAYS / "multi-region")
    plant(objects)
    assert policies.regions(objects) != []


def test_the_engines_probe_port_is_the_one_the_settings_name():
    # The probe and the scrape both find the engine on HERALD_ENGINE__PROBE_PORT, on every
    # address of the pod (the engine's own default, 127.0.0.1, is out of the kubelet's reach).
    objects = render(OVERLAYS / "single-region")
    assert config(objects)["HERALD_API__HOST"] == "0.0.0.0"
    for engine in [*workers(objects), _dispatcher(objects)]:
        env = {e["name"]: e.get("value") for e in _container(engine)["env"]}
        assert env["HERALD_ENGINE__PROBE_HOST"] == "0.0.0.0"
        annotations = engine["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == env["HERALD_ENGINE__PROBE_PORT"]
    assert Path(KUBERNETES / "prometheus" / "scrape-configs.yaml").exists()


def test_the_api_keeps_serving_while_its_endpoints_are_updated():
    objects = render(OVERLAYS / "single-region")
    api = _api(objects)
    sleep_s = _container(api)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 3 <= sleep_s < pod_spec(api)["terminationGracePeriodSeconds"] - 15


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_documented_first_steps_start_no_pod_but_the_migration(overlay: str):
    # docs/operations.md: `-l '!app.kubernetes.io/component'` (settings, policies, budgets),
    # then `-l app.kubernetes.io/component=migrate`, before anything that runs Herald.
    objects = render(OVERLAYS / overlay)
    role = "app.kubernetes.io/component"
    unlabelled = [o for o in objects if role not in o["metadata"]["labels"]]
    migrate = [o for o in objects if o["metadata"]["labels"].get(role) == "migrate"]
    assert {o["kind"] for o in unlabelled} & {"Deployment", "Job", "ScaledObject"} == set()
    assert "ConfigMap" in {o["kind"] for o in unlabelled}
    assert [o["kind"] for o in migrate] == ["Job"]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_object_is_labelled_herald(overlay: str):
    # `kubectl get/delete -l app.kubernetes.io/name=herald` finds all of it.
    unlabelled = [
        f"{o['kind']} {name(o)}"
        for o in render(OVERLAYS / overlay)
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") != "herald"
    ]
    assert unlabelled == []
