"""Rules every rendering of deploy/kubernetes must keep. Each check takes the rendered objects
and returns its problems, one line each (none: the rule holds), so a test can show it both
passing on the real manifests and failing on a copy with a violation planted.
"""

from __future__ import annotations

import inspect
import json
import os
import tomllib
from collections import Counter, defaultdict
from collections.abc import Callable
from fractions import Fraction
from typing import Any, get_origin
from unittest.mock import patch

import typer.main
from pydantic import ValidationError
from pydantic_settings import SettingsError

try:  # the Click the CLI is built on: typer vendors its own from 0.2x on
    from typer import _click as click
except ImportError:  # pragma: no cover - an older typer, on Click itself
    import click  # type: ignore[no-redef]
from herald.cli import app
from herald.config import BrokerSettings, Settings
from herald.constants import RABBIT_QUEUE_PREFIX, REDIS_QUEUE_GROUP, REDIS_QUEUE_PREFIX
from herald.domain import Platform
from herald.queues.amqp import Topology
from herald.queues.metrics import BACKLOG_METRIC
from herald.queues.rabbitmq import RabbitQueue
from herald.queues.redis_streams import RedisStreamQueue, stream_key
from tests.deploy.kube_render import (
    IMAGE,
    ROOT,
    Obj,
    config,
    name,
    of_kind,
    pod_spec,
    workers,
    workloads,
)
from tests.deploy.policy import worst_case_drain_s

Check = Callable[[list[Obj]], list[str]]

#: The roadmap's capacity shares of the multi-region deployment.
REGION_SHARES = {"us-east-1": 40, "us-west-2": 30, "eu-west-1": 20, "ap-southeast-1": 10}
#: The autoscalers' targets per pod (docs/operations.md, "Scale"): messages on RabbitMQ, stream
#: entries on Redis, jobs for the HPA on herald_queue_backlog.
TARGETS = {"rabbitmq": "5", "redis-streams": "3", "hpa": "50"}
#: The well-known node label of a node's cloud region.
REGION_LABEL = "topology.kubernetes.io/region"
_COMMAND = typer.main.get_command(app)


def _containers(obj: Obj) -> list[Obj]:
    containers: list[Obj] = pod_spec(obj)["containers"]
    return containers


def _env(container: Obj) -> dict[str, Obj]:
    return {item["name"]: item for item in container.get("env", [])}


def _port(container: Obj, port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    by_name = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    return by_name.get(port)


def probes(objects: list[Obj]) -> list[str]:
    """Every long-running container answers liveness on /healthz and readiness on /readyz, on
    the port its process listens on (the API's port, or the engine's probe port)."""
    problems = []
    for obj in of_kind(objects, "Deployment"):
        role = obj["metadata"]["labels"].get("app.kubernetes.io/component")
        key = "HERALD_API__PORT" if role == "api" else "HERALD_ENGINE__PROBE_PORT"
        for c in _containers(obj):
            env = _environment(c, objects)
            if isinstance(env, str) or key not in env:
                problems.append(f"{name(obj)}: no {key}")
                continue
            listens = int(env[key])
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = c.get(probe, {}).get("httpGet")
                if get is None:
                    problems.append(f"{name(obj)}: no {probe} over HTTP")
                elif get.get("path") != path:
                    problems.append(f"{name(obj)}: {probe} asks {get.get('path')}, not {path}")
                elif _port(c, get["port"]) != listens:
                    problems.append(f"{name(obj)}: {probe} asks a port {key} does not name")
    return problems


def resources(objects: list[Obj]) -> list[str]:
    """Every container requests CPU and memory and is limited in both."""
    problems = []
    for obj in workloads(objects):
        for c in _containers(obj):
            for kind in ("requests", "limits"):
                given = c.get("resources", {}).get(kind, {})
                missing = {"cpu", "memory"} - set(given)
                if missing:
                    problems.append(f"{name(obj)}: no {kind} for {', '.join(sorted(missing))}")
    return problems


def security(objects: list[Obj]) -> list[str]:
    """Every container runs as a numeric non-root user, cannot gain privileges, has every
    capability dropped, the default seccomp profile, and a read-only root file system with an
    emptyDir on /tmp."""
    problems = []
    for obj in workloads(objects):
        pod = pod_spec(obj)
        pod_ctx = pod.get("securityContext", {})
        empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for c in _containers(obj):
            ctx = {**pod_ctx, **c.get("securityContext", {})}
            where = f"{name(obj)}/{c['name']}"
            user = ctx.get("runAsUser")
            if ctx.get("runAsNonRoot") is not True or not isinstance(user, int) or user == 0:
                problems.append(f"{where}: not a numeric non-root user")
            if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: may gain privileges")
            if c.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: writable root file system")
            if "ALL" not in c.get("securityContext", {}).get("capabilities", {}).get("drop", []):
                problems.append(f"{where}: capabilities kept")
            if ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{where}: no RuntimeDefault seccomp profile")
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            if not tmp or tmp[0]["name"] not in empty_dirs:
                problems.append(f"{where}: /tmp is not an emptyDir")
    return problems


def image(objects: list[Obj]) -> list[str]:
    """Every container runs Herald's image at the package's version."""
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    want = f"{IMAGE}:{package['version']}"
    return [
        f"{name(obj)}: runs {c.get('image')}, not {want}"
        for obj in workloads(objects)
        for c in _containers(obj)
        if c.get("image") != want
    ]


def _parse(args: list[str]) -> dict[str, object] | str:
    """The options ``herald <args>`` would run with, or why the CLI refuses it."""
    with click.Context(_COMMAND, info_name="herald") as group_ctx:
        sub = _COMMAND.get_command(group_ctx, args[0]) if args else None
        if sub is None:
            return f"no command {args[:1]}"
        try:
            ctx = sub.make_context(args[0], args[1:], parent=group_ctx)
        except click.ClickException as exc:
            return exc.format_message()
        return dict(ctx.params)


def command_lines(objects: list[Obj]) -> list[str]:
    """Every container's arguments are a `herald` command line the CLI accepts (unknown
    options and bad values fail as they would at start-up); a worker names known platforms,
    each at its roadmap concurrency (the platform's default in herald.config)."""
    problems = []
    defaults = Settings(database_url="memory://")
    known = {p.value for p in Platform}
    for obj in workloads(objects):
        for c in _containers(obj):
            args = [str(a) for a in c.get("args", [])]
            params = _parse(args)
            if isinstance(params, str):
                problems.append(f"{name(obj)}: herald {' '.join(args)}: {params}")
                continue
            if args[0] != "worker":
                continue
            for platform in str(params.get("platforms") or "").split(","):
                if platform not in known:
                    problems.append(f"{name(obj)}: unknown platform {platform!r}")
                    continue
                want = defaults.platform(Platform(platform)).concurrency
                if params.get("concurrency") != want:
                    problems.append(f"{name(obj)}: {platform} not at concurrency {want}")
    return problems


def drain(objects: list[Obj]) -> list[str]:
    """The engines' pods get time to drain on SIGTERM: the engine's worst-case stop, every
    phase of it at its pod's engine.shutdown_grace_s (tests.deploy.policy.worst_case_drain_s),
    before the kubelet kills it."""
    problems = []
    for obj in of_kind(objects, "Deployment"):
        role = obj["metadata"]["labels"].get("app.kubernetes.io/component")
        if role not in ("dispatcher", "worker"):
            continue
        env = _environment(_containers(obj)[0], objects)
        if isinstance(env, str):
            problems.append(f"{name(obj)}: {env}")
            continue
        engine_s = float(env.get("HERALD_ENGINE__SHUTDOWN_GRACE_S", 30.0))
        webhooks_s = float(env.get("HERALD_WEBHOOKS__SHUTDOWN_GRACE_S", 10.0))
        worst_s = worst_case_drain_s(engine_s, webhooks_s)
        given = pod_spec(obj).get("terminationGracePeriodSeconds", 30)
        if given < worst_s:
            problems.append(
                f"{name(obj)}: terminationGracePeriodSeconds {given} < the {worst_s:g} s "
                f"worst-case stop at shutdown_grace_s {engine_s:g}"
            )
    return problems


def platform_timeouts(objects: list[Obj]) -> list[str]:
    """A worker's drain lets a request started just before SIGTERM run its course: its
    engine.shutdown_grace_s is at least its platforms' request timeout (a YouTube upload
    cut short wastes its upload session's quota)."""
    problems = []
    for obj in workers(objects):
        env = _environment(_containers(obj)[0], objects)
        if isinstance(env, str):
            continue
        try:
            with patch.dict(os.environ, env, clear=True):
                settings = Settings()
        except (ValidationError, SettingsError):
            continue  # the settings rule's problem
        platform = _platform(obj)
        timeout_s = getattr(settings, platform.value).timeout_s
        if settings.engine.shutdown_grace_s < timeout_s:
            problems.append(
                f"{name(obj)}: shutdown_grace_s {settings.engine.shutdown_grace_s:g} < "
                f"{platform.value}'s request timeout {timeout_s:g}"
            )
    return problems


# -- workers, their regions and their scalers ---------------------------------------------------


def _region(worker: Obj, objects: list[Obj]) -> str:
    """The region a worker reads: its --region, else the deployment's HERALD_REGION."""
    args = [str(a) for a in _containers(worker)[0].get("args", [])]
    if "--region" in args[:-1]:
        return args[args.index("--region") + 1]
    return config(objects)["HERALD_REGION"]


def _platform(worker: Obj) -> Platform:
    return Platform(worker["metadata"]["labels"]["platform"])


def _scalers(objects: list[Obj]) -> list[tuple[Obj, str]]:
    """Every autoscaler and the Deployment it names."""
    out = [(obj, obj["spec"]["scaleTargetRef"]["name"]) for obj in of_kind(objects, "ScaledObject")]
    out += [
        (obj, obj["spec"]["scaleTargetRef"]["name"])
        for obj in of_kind(objects, "HorizontalPodAutoscaler")
        if obj["spec"]["scaleTargetRef"]["kind"] == "Deployment"
    ]
    return out


def _bounds(scaler: Obj) -> tuple[int, int]:
    spec = scaler["spec"]
    if scaler["kind"] == "ScaledObject":
        return spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    return spec.get("minReplicas", 1), spec["maxReplicas"]


def one_scaler_each(objects: list[Obj]) -> list[str]:
    """Every worker Deployment is scaled by exactly one ScaledObject or HPA, and every scaler
    scales a worker Deployment."""
    counts = Counter(target for _, target in _scalers(objects))
    names = {name(w) for w in workers(objects)}
    problems = [f"{n}: {counts[n]} scalers" for n in sorted(names) if counts[n] != 1]
    problems += [f"a scaler targets {t}, no worker Deployment" for t in counts if t not in names]
    return problems


def _broker_key(worker: Obj) -> str | None:
    ref = _env(_containers(worker)[0]).get("HERALD_BROKER__URL", {}).get("valueFrom", {})
    return ref.get("secretKeyRef", {}).get("key")


def _trigger_problems(scaler: Obj, worker: Obj, platform: Platform, region: str) -> list[str]:
    where = name(scaler)
    if scaler["kind"] == "HorizontalPodAutoscaler":
        [metric] = scaler["spec"]["metrics"]
        external = metric["external"]
        want = {"platform": platform.value, "region": region}
        problems = []
        if external["metric"]["name"] != BACKLOG_METRIC:
            problems.append(f"{where}: scales on {external['metric']['name']}")
        if external["metric"].get("selector", {}).get("matchLabels") != want:
            problems.append(f"{where}: selects {external['metric'].get('selector')}, not {want}")
        if external["target"].get("averageValue") != TARGETS["hpa"]:
            problems.append(f"{where}: target {external['target']}")
        return problems
    [trigger] = scaler["spec"]["triggers"]
    meta = trigger["metadata"]
    if trigger["type"] == "rabbitmq":
        want_queue = Topology(RABBIT_QUEUE_PREFIX, delivery_limit=1).queue(platform, region)
        checks = [
            (
                meta.get("queueName") == want_queue,
                f"queue {meta.get('queueName')}, not {want_queue}",
            ),
            (
                meta.get("mode") == "QueueLength" and meta.get("value") == TARGETS["rabbitmq"],
                f"not {TARGETS['rabbitmq']} per pod",
            ),
            (_broker_key(worker) == "rabbitmq-url", "its worker's broker is not RabbitMQ"),
        ]
    elif trigger["type"] == "redis-streams":
        want_stream = stream_key(REDIS_QUEUE_PREFIX, platform, region)
        checks = [
            (meta.get("stream") == want_stream, f"stream {meta.get('stream')}, not {want_stream}"),
            (meta.get("consumerGroup") == REDIS_QUEUE_GROUP, f"group {meta.get('consumerGroup')}"),
            (
                meta.get("lagCount") == TARGETS["redis-streams"],
                f"not {TARGETS['redis-streams']} per pod",
            ),
            (_broker_key(worker) == "redis-url", "its worker's broker is not Redis Streams"),
        ]
    else:
        checks = [(False, f"trigger {trigger['type']}")]
    return [f"{where}: {problem}" for ok, problem in checks if not ok]


def triggers(objects: list[Obj]) -> list[str]:
    """Each scaler watches the queue its worker reads (Herald's own names for it, of that
    platform and region) on the broker the worker uses, at the documented target per pod."""
    by_name = {name(w): w for w in workers(objects)}
    problems = []
    for scaler, target in _scalers(objects):
        worker = by_name.get(target)
        if worker is None:
            continue  # one_scaler_each's problem
        problems += _trigger_problems(scaler, worker, _platform(worker), _region(worker, objects))
    return problems


def _jobs_per_message(kind: str) -> int:
    """The most jobs one unit a scaler counts holds: a RabbitMQ message, a stream entry (the
    queues' ``bundle``, which bootstrap leaves at its default), a job (the HPA's metric)."""
    queue = {"rabbitmq": RabbitQueue, "redis-streams": RedisStreamQueue}.get(kind)
    if queue is None:
        return 1
    bundle: int = inspect.signature(queue).parameters["bundle"].default
    return bundle


def _target(scaler: Obj) -> tuple[str, float]:
    """The scaler's trigger kind and its target per pod, in what it counts."""
    if scaler["kind"] == "HorizontalPodAutoscaler":
        [metric] = scaler["spec"]["metrics"]
        return "hpa", float(metric["external"]["target"]["averageValue"])
    [trigger] = scaler["spec"]["triggers"]
    meta = trigger["metadata"]
    return trigger["type"], float(meta.get("value", meta.get("lagCount", 0)))


def reach(objects: list[Obj]) -> list[str]:
    """Every scaler can reach its most pods: the dispatcher stops claiming once
    broker.max_queued jobs wait unread, summed over every queue, so the backlog that keeps
    every worker Deployment at its maxReplicaCount at once (most pods x target x jobs a
    message may hold) must fit under it."""
    limit = int(config(objects).get("HERALD_BROKER__MAX_QUEUED", BrokerSettings().max_queued))
    needed = 0.0
    for scaler, _ in _scalers(objects):
        kind, target = _target(scaler)
        needed += _bounds(scaler)[1] * target * _jobs_per_message(kind)
    if needed > limit:
        return [f"the scalers' most pods need {needed:g} jobs waiting; max_queued is {limit}"]
    return []


def _scale_down(scaler: Obj) -> Obj:
    if scaler["kind"] == "ScaledObject":
        advanced = scaler["spec"].get("advanced", {})
        behavior = advanced.get("horizontalPodAutoscalerConfig", {}).get("behavior", {})
    else:
        behavior = scaler["spec"].get("behavior", {})
    down: Obj = behavior.get("scaleDown", {})
    return down


def gentle_scale_down(objects: list[Obj]) -> list[str]:
    """An autoscaler lets a worker's pods go no faster than they drain: each scale-down policy's
    period is at least the worker's engine.shutdown_grace_s (so the pods it let go have
    finished their requests before it lets more go; YouTube's uploads take up to 600 s), after
    a stabilisation window of 5 minutes at least."""
    by_name = {name(w): w for w in workers(objects)}
    problems = []
    for scaler, target in _scalers(objects):
        worker = by_name.get(target)
        env = None if worker is None else _environment(_containers(worker)[0], objects)
        if worker is None or isinstance(env, str) or env is None:
            continue
        grace_s = float(env.get("HERALD_ENGINE__SHUTDOWN_GRACE_S", 30.0))
        down = _scale_down(scaler)
        if down.get("stabilizationWindowSeconds", 300) < 300:
            problems.append(f"{name(scaler)}: scale-down window under 5 minutes")
        policies = down.get("policies") or [{"periodSeconds": 15}]  # Kubernetes' default
        for policy in policies:
            if policy["periodSeconds"] < grace_s:
                problems.append(
                    f"{name(scaler)}: lets pods go every {policy['periodSeconds']} s, "
                    f"they drain for {grace_s:g} s"
                )
    return problems


def single_region_bounds(objects: list[Obj]) -> list[str]:
    """One region: every worker Deployment scales between 5 and 100 pods."""
    return [
        f"{name(scaler)}: {_bounds(scaler)}, not (5, 100)"
        for scaler, _ in _scalers(objects)
        if _bounds(scaler) != (5, 100)
    ]


def regions(objects: list[Obj]) -> list[str]:
    """Four regions: each region runs one worker Deployment per platform started with
    --region <its region> (its region label too), and each platform's capacity is shared
    40/30/20/10 (us-east-1, us-west-2, eu-west-1, ap-southeast-1), at its most and its least."""
    problems = []
    by_name = {name(w): w for w in workers(objects)}
    seen: dict[str, list[Platform]] = defaultdict(list)
    for worker in by_name.values():
        args = [str(a) for a in _containers(worker)[0].get("args", [])]
        label = worker["metadata"]["labels"].get("region")
        if args.count("--region") != 1 or label is None or _region(worker, objects) != label:
            problems.append(f"{name(worker)}: region label {label}, started with {args}")
        seen[_region(worker, objects)].append(_platform(worker))
    for region in REGION_SHARES.keys() | seen.keys():
        if sorted(seen.get(region, [])) != sorted(Platform):
            problems.append(
                f"{region}: workers for {sorted(p.value for p in seen.get(region, []))}"
            )
    bounds: dict[Platform, dict[str, tuple[int, int]]] = defaultdict(dict)
    for scaler, target in _scalers(objects):
        if target in by_name:
            worker = by_name[target]
            bounds[_platform(worker)][_region(worker, objects)] = _bounds(scaler)
    want = {r: Fraction(share, 100) for r, share in REGION_SHARES.items()}
    for platform, per_region in bounds.items():
        for index, what in ((0, "least"), (1, "most")):
            total = sum(b[index] for b in per_region.values())
            shares = {r: Fraction(b[index], total) for r, b in per_region.items()} if total else {}
            if shares != want:
                problems.append(f"{platform.value}: shares at its {what} {shares}, not {want}")
    return problems


#: Who gets which setting: the secret keys only where secrets are encrypted or decrypted (the
#: API writes channel credentials and webhook secrets, the workers read them and sign
#: webhooks), the engine's probe only in the engines (in an API pod it would send
#: `herald healthcheck` to a port nothing listens on).
SCOPED = {
    "HERALD_SECRET_KEYS": {"api", "worker"},
    "HERALD_ENGINE__PROBE_PORT": {"dispatcher", "worker"},
    "HERALD_ENGINE__PROBE_HOST": {"dispatcher", "worker"},
}


def scoped_settings(objects: list[Obj]) -> list[str]:
    """Each setting of :data:`SCOPED` reaches exactly the roles that use it."""
    problems = []
    for obj in workloads(objects):
        role = obj["metadata"]["labels"].get("app.kubernetes.io/component")
        for c in _containers(obj):
            env = _environment(c, objects)
            if isinstance(env, str):
                continue  # the settings rule's problem
            for variable, roles in SCOPED.items():
                if (variable in env) != (role in roles):
                    has = "gets" if variable in env else "lacks"
                    problems.append(f"{name(obj)} ({role}): {has} {variable}")
    return problems


def placement(objects: list[Obj]) -> list[str]:
    """A worker started with --region <region> runs on that region's nodes: its pods select
    ``topology.kubernetes.io/region: <region>`` (a label only would place it anywhere)."""
    problems = []
    for worker in workers(objects):
        args = [str(a) for a in _containers(worker)[0].get("args", [])]
        if "--region" not in args[:-1]:
            continue
        region = args[args.index("--region") + 1]
        selected = pod_spec(worker).get("nodeSelector", {}).get(REGION_LABEL)
        if selected != region:
            problems.append(f"{name(worker)}: reads {region}, placed on {REGION_LABEL}={selected}")
    return problems


# -- network ------------------------------------------------------------------------------------


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _policies_of(objects: list[Obj], component: str) -> list[Obj]:
    pods = [
        obj["spec"]["template"]["metadata"]["labels"]
        for obj in of_kind(objects, "Deployment")
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    return [
        policy
        for policy in of_kind(objects, "NetworkPolicy")
        if any(_selects(policy["spec"]["podSelector"], labels) for labels in pods)
    ]


#: What a worker may reach: DNS, PostgreSQL, Redis, RabbitMQ (AMQP, AMQPS), and HTTPS.
_WORKER_PORTS = {53, 5432, 6379, 5672, 5671, 443}


def network(objects: list[Obj]) -> list[str]:
    """Everything is denied unless allowed; workers reach only DNS, the database, Redis, the
    broker and the internet on 443 (public addresses); the API takes requests from the ingress
    controller's namespace (and scrapes from monitoring's) only."""
    problems = []
    if not any(
        p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in of_kind(objects, "NetworkPolicy")
    ):
        problems.append("no default-deny NetworkPolicy")
    for policy in _policies_of(objects, "worker"):
        for rule in policy["spec"].get("egress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            if not ports or not ports <= _WORKER_PORTS:
                problems.append(f"{name(policy)}: workers may reach ports {ports or 'all'}")
            if 443 in ports and not all("ipBlock" in peer for peer in rule.get("to", [{}])):
                problems.append(f"{name(policy)}: 443 open beyond the internet's addresses")
    allowed_from = {"ingress-nginx", "monitoring"}
    from_controller = False
    for policy in _policies_of(objects, "api"):
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from", [])
            spaces = {
                peer.get("namespaceSelector", {})
                .get("matchLabels", {})
                .get("kubernetes.io/metadata.name")
                for peer in peers
            }
            if not peers or not spaces <= allowed_from or any("ipBlock" in p for p in peers):
                problems.append(f"{name(policy)}: the API takes requests from {peers or 'anyone'}")
            from_controller |= "ingress-nginx" in spaces
    if not from_controller:
        problems.append("the ingress controller cannot reach the API")
    return problems


# -- settings -----------------------------------------------------------------------------------

#: Stand-ins for the Secret's values, of the form each setting takes.
SECRET_SAMPLES = {
    "database-url": "postgresql://herald@postgres:5432/herald",
    "redis-url": "redis://redis:6379/0",
    "rabbitmq-url": "amqp://herald:herald@rabbitmq:5672/herald",
    "secret-keys": "dGhpcnR5LXR3by1ieXRlcy1vZi1yYW5kb20tZGF0YS4=",
    "metrics-token": "token",
    # overlays/data-residency: every region's database (JSON), and the directory.
    "regions": json.dumps(
        {
            region: {
                "database_url": f"postgresql://herald@postgres.{region}:5432/herald",
                "api_url": f"https://{region}.herald.example.com",
            }
            for region in ("us-east-1", "eu-west-1")
        }
    ),
    "directory-url": "postgresql://herald@directory.us-east-1:5432/directory",
}


def _names_a_setting(variable: str) -> bool:
    """Whether ``HERALD_A__B`` is a field of :class:`Settings` (``a.b``): pydantic-settings
    ignores a variable that names none, so a misspelt one would be dropped in silence."""
    model: Any = Settings
    for part in variable.removeprefix("HERALD_").lower().split("__"):
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        annotation = fields[part].annotation
        if get_origin(annotation) is dict:
            # A mapping is one value, given whole as JSON (HERALD_REGIONS: region -> its
            # settings), though its values are models.
            model = annotation
            continue
        models = [a for a in getattr(annotation, "__args__", ()) if hasattr(a, "model_fields")]
        model = models[0] if models else annotation
    return not hasattr(model, "model_fields")  # a value, not a whole section


def _environment(container: Obj, objects: list[Obj]) -> dict[str, str] | str:
    env = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        [data] = [o["data"] for o in of_kind(objects, "ConfigMap") if name(o) == ref] or [None]
        if data is None:
            return f"no ConfigMap {ref}"
        env.update(data)
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            key = item["valueFrom"]["secretKeyRef"]["key"]
            if key not in SECRET_SAMPLES:
                return f"{item['name']} from an unknown Secret key {key}"
            env[item["name"]] = SECRET_SAMPLES[key]
    return env


def settings(objects: list[Obj]) -> list[str]:
    """Every HERALD_* variable a container gets names a setting, and together they make
    settings Herald accepts."""
    problems = []
    for obj in workloads(objects):
        for c in _containers(obj):
            env = _environment(c, objects)
            if isinstance(env, str):
                problems.append(f"{name(obj)}: {env}")
                continue
            unknown = sorted(v for v in env if v.startswith("HERALD_") and not _names_a_setting(v))
            problems += [f"{name(obj)}: {v} names no setting" for v in unknown]
            with patch.dict(os.environ, env, clear=True):
                try:
                    Settings()
                except (ValidationError, SettingsError) as exc:
                    problems.append(f"{name(obj)}: invalid settings: {exc}")
    return problems


ALL: dict[str, Check] = {
    "settings": settings,
    "probes": probes,
    "resources": resources,
    "security": security,
    "image": image,
    "command_lines": command_lines,
    "drain": drain,
    "platform_timeouts": platform_timeouts,
    "one_scaler_each": one_scaler_each,
    "triggers": triggers,
    "placement": placement,
    "scoped_settings": scoped_settings,
    "reach": reach,
    "gentle_scale_down": gentle_scale_down,
    "network": network,
}
