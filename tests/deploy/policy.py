"""The deployment policy, as functions that list what a Dockerfile or a Compose file breaks.

The tests run them on the repository's files (no problem allowed) and on copies with one
violation planted each (the problem must be named), so a check that can never fail shows.
The Dockerfile is read by the ``dockerfile`` package (BuildKit's own parser, compiled in);
Compose files are read with PyYAML (which resolves the anchors and ``<<`` merges) and
validated against the Compose Specification's schema; commands are parsed by Herald's own
command line (Click), so an unknown command or option is caught as Herald would refuse it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import dockerfile
import jsonschema
import typer
import typer.core
import typer.main
import yaml
from pydantic import BaseModel

from herald.cli import app
from herald.config import EngineSettings, Settings, WebhookSettings
from herald.domain import Platform

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).with_name("schemas") / "compose-spec.json"

#: An image reference pinned to an exact version (major.minor.patch in its tag) ...
_EXACT_TAG = re.compile(r"^[\w.\-/:]+:v?\d+\.\d+\.\d+[\w.\-]*$")
#: ... or major.minor for the images whose releases are numbered so (PostgreSQL since 10:
#: 17.6 is one release; 17 would float).
_TWO_PART = re.compile(r"^(postgres):\d+\.\d+(-[\w.]+)?$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


# -- Herald's command line ---------------------------------------------------------------------
def command_problem(argv: Sequence[str]) -> str | None:
    """None if ``herald <argv>`` is a real command with real options and valid values, else
    why not. Parsed by Click exactly as ``herald`` would parse it, without running it."""
    return _subcommand_problem(_herald(), "herald", list(argv))


@cache
def _herald() -> Any:
    """Herald's command tree, as ``herald`` builds it (built once: it takes a while)."""
    return typer.main.get_command(app)


def _subcommand_problem(group: Any, prefix: str, argv: list[str]) -> str | None:
    # Typer carries its own copy of Click (typer._click): its exceptions derive from
    # typer.TyperException, its groups from typer.core.TyperGroup. Herald's groups take no
    # options of their own, so the first word names the command.
    parent = typer.Context(group, info_name=prefix)
    command = group.get_command(parent, argv[0]) if argv else None
    if command is None:
        return f"{prefix} {' '.join(argv)}: no such command"
    if isinstance(command, typer.core.TyperGroup):  # herald admin ...
        return _subcommand_problem(command, f"{prefix} {argv[0]}", argv[1:])
    try:
        with command.make_context(argv[0], argv[1:], parent=parent) as ctx:
            return _platforms_problem(ctx.params.get("platforms"))
    except typer.TyperException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        return f"{prefix} {' '.join(argv)}: {message}"


def _platforms_problem(value: object) -> str | None:
    if value is None:
        return None
    known = {p.value for p in Platform}
    unknown = [name for name in str(value).split(",") if name.strip() not in known]
    return f"--platforms: unknown {unknown}" if unknown else None


def setting_problem(name: str) -> str | None:
    """None if the environment variable ``name`` (HERALD_A__B) names a field of Settings."""
    path = name.removeprefix("HERALD_").lower().split("__")
    model: type[BaseModel] = Settings
    for depth, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return f"{name}: Settings has no {'.'.join(path[: depth + 1])}"
        annotation = field.annotation
        if depth + 1 < len(path):
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return f"{name}: {'.'.join(path[: depth + 1])} has no sub-settings"
            model = annotation
    return None


# -- the Dockerfile ----------------------------------------------------------------------------
def dockerfile_problems(path: Path) -> list[str]:
    commands = dockerfile.parse_file(str(path))
    args = _build_args(commands)
    stages = _stages(commands)
    problems: list[str] = []
    if len(stages) < 2:
        problems.append("not multi-stage: build the wheel in a stage of its own")
    names = {stage[0].value[2].lower() for stage in stages if len(stage[0].value) == 3}
    for stage in stages:
        problems += _base_problems(stage[0], args, names)
    final = stages[-1] if stages else ()
    problems += _user_problems(final)
    problems += _entry_problems(final)
    problems += _env_problems(final)
    return problems


def _build_args(commands: Sequence[dockerfile.Command]) -> dict[str, str]:
    args: dict[str, str] = {}
    for command in commands:
        if command.cmd.upper() == "ARG":
            for item in command.value:
                key, _, default = item.partition("=")
                args[key] = default
    return args


def _stages(commands: Sequence[dockerfile.Command]) -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for command in commands:
        if command.cmd.upper() == "FROM":
            stages.append([command])
        elif stages:
            stages[-1].append(command)
    return stages


def _expand(text: str, args: Mapping[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def _base_problems(
    command: dockerfile.Command, args: Mapping[str, str], stage_names: set[str]
) -> list[str]:
    image = _expand(command.value[0], args)
    if image.lower() in stage_names:
        return []
    return image_problems(image, digest=True)


def image_problems(image: str, *, digest: bool) -> list[str]:
    """What is wrong with how ``image`` is pinned: an exact version tag, never ``latest``,
    and (``digest``) the digest of that version."""
    problems = []
    reference = _DIGEST.sub("", image)
    if reference.endswith(":latest") or ":" not in reference.rsplit("/", 1)[-1]:
        problems.append(f"{image}: unpinned (latest)")
    elif not (_EXACT_TAG.match(reference) or _TWO_PART.match(reference)):
        problems.append(f"{image}: not pinned to an exact version")
    if digest and not _DIGEST.search(image):
        problems.append(f"{image}: not pinned by digest")
    return problems


def _last(stage: Sequence[dockerfile.Command], name: str) -> dockerfile.Command | None:
    found = [command for command in stage if command.cmd.upper() == name]
    return found[-1] if found else None


def _user_problems(stage: Sequence[dockerfile.Command]) -> list[str]:
    user = _last(stage, "USER")
    if user is None:
        return ["the image runs as root: no USER"]
    uid, _, gid = user.value[0].partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        return [f"USER {user.value[0]}: not numeric (runAsNonRoot cannot check a name)"]
    if int(uid) == 0 or (gid and int(gid) == 0):
        return [f"USER {user.value[0]}: root"]
    return []


def _entry_problems(stage: Sequence[dockerfile.Command]) -> list[str]:
    problems = []
    entrypoint = _last(stage, "ENTRYPOINT")
    if entrypoint is None or not entrypoint.json or list(entrypoint.value) != ["herald"]:
        problems.append('ENTRYPOINT is not ["herald"] (exec form)')
    cmd = _last(stage, "CMD")
    if cmd is not None and (problem := command_problem(cmd.value)):
        problems.append(f"CMD: {problem}")
    health = _last(stage, "HEALTHCHECK")
    if health is None or health.value[0].upper() == "NONE":
        problems.append("no HEALTHCHECK")
    elif not health.json or list(health.value[:2]) != ["CMD", "herald"]:
        problems.append("HEALTHCHECK is not herald's own check (exec form)")
    elif problem := command_problem(health.value[2:]):
        problems.append(f"HEALTHCHECK: {problem}")
    return problems


def _env_problems(stage: Sequence[dockerfile.Command]) -> list[str]:
    env: dict[str, str] = {}
    for command in stage:
        if command.cmd.upper() == "ENV":
            pairs = command.value
            env.update(zip(pairs[::2], pairs[1::2], strict=True))
    problems = []
    if env.get("PYTHONDONTWRITEBYTECODE") != "1":
        problems.append("PYTHONDONTWRITEBYTECODE is not 1: Python writes .pyc on a read-only root")
    for name in ("HOME", "XDG_CACHE_HOME", "TMPDIR"):
        if not env.get(name, "").startswith("/tmp"):
            problems.append(f"{name} is not under /tmp: the root file system is read-only")
    problems += [p for name in env if name.startswith("HERALD_") if (p := setting_problem(name))]
    return problems


# -- Compose files -----------------------------------------------------------------------------
def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def _compose_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))


def schema_problems(document: Any) -> list[str]:
    """The Compose Specification's schema errors of ``document``."""
    errors = _compose_validator().iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]


def herald_services(document: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The services that run Herald's image (they are built from this repository)."""
    for name, service in document.get("services", {}).items():
        if "build" in service or str(service.get("image", "")).startswith("${HERALD_IMAGE"):
            yield name, service


def duration_s(text: str | int | float) -> float:
    """A Compose duration (``1m30s``, ``45s``, ``500ms``) in seconds."""
    if isinstance(text, int | float):
        return float(text)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Compose duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


def compose_problems(document: Mapping[str, Any]) -> list[str]:
    """What compose.yaml breaks of the policy (schema apart: :func:`schema_problems`)."""
    services: Mapping[str, Any] = document.get("services", {})
    problems: list[str] = []
    for name, service in services.items():
        image = str(service.get("image", ""))
        if not image.startswith("${HERALD_IMAGE"):
            problems += [f"{name}: {p}" for p in image_problems(image, digest=False)]
        problems += _dependency_problems(name, service, services)
    herald = dict(herald_services(document))
    if "migrate" not in herald:
        problems.append("no migrate service")
    for name, service in herald.items():
        problems += [f"{name}: {p}" for p in _herald_service_problems(name, service)]
    problems += _worker_problems(herald)
    problems += _read_only_secret_problems(document)
    problems += _redis_memory_problems(services)
    return problems


def _redis_memory_problems(services: Mapping[str, Any]) -> list[str]:
    """``noeviction`` without ``maxmemory`` bounds nothing: Redis grows until the host
    kills it."""
    problems = []
    for name, service in services.items():
        command = [str(word) for word in service.get("command") or []]
        if (
            command[:1] == ["redis-server"]
            and "noeviction" in command
            and "--maxmemory" not in command
        ):
            problems.append(f"{name}: noeviction without --maxmemory")
    return problems


def _read_only_secret_problems(document: Mapping[str, Any]) -> list[str]:
    """A secret sourced from ``environment:`` is written into the container when Compose
    creates it, which a read-only root refuses ("`file` is the sole supported option",
    docker/compose#12031): the service would never start."""
    secrets: Mapping[str, Any] = document.get("secrets") or {}
    problems = []
    for name, service in (document.get("services") or {}).items():
        if service.get("read_only") is not True:
            continue
        for entry in service.get("secrets") or []:
            source = entry if isinstance(entry, str) else entry.get("source")
            if "environment" in (secrets.get(source) or {}):
                problems.append(
                    f"{name}: read_only, and takes secret {source} from the environment "
                    "(Compose cannot write it into a read-only container: use a file: secret)"
                )
    return problems


def _dependency_problems(
    name: str, service: Mapping[str, Any], services: Mapping[str, Any]
) -> list[str]:
    problems = []
    for dependency, spec in (service.get("depends_on") or {}).items():
        if dependency not in services:
            problems.append(f"{name}: depends on {dependency}, which is not a service")
            continue
        condition = spec.get("condition", "service_started")
        healthcheck = services[dependency].get("healthcheck", {})
        if condition == "service_healthy" and (not healthcheck or healthcheck.get("disable")):
            problems.append(f"{name}: waits for {dependency} healthy, which has no healthcheck")
    if "healthcheck" not in service and name != "migrate":
        problems.append(f"{name}: no healthcheck")
    if "restart" not in service:
        problems.append(f"{name}: no restart policy")
    return problems


def _herald_service_problems(name: str, service: Mapping[str, Any]) -> list[str]:
    problems = []
    if (problem := command_problem(service.get("command", ["serve"]))) is not None:
        problems.append(problem)
    test = service.get("healthcheck", {}).get("test")
    if test is not None and (test[:2] != ["CMD", "herald"] or command_problem(test[2:])):
        problems.append(f"healthcheck {test} is not a real `herald healthcheck`")
    if service.get("read_only") is not True:
        problems.append("the root file system is not read_only")
    if not any(str(t).split(":")[0] == "/tmp" for t in service.get("tmpfs", [])):
        problems.append("no tmpfs on /tmp")
    for variable in service.get("environment") or {}:
        if variable.startswith("HERALD_") and (problem := setting_problem(variable)):
            problems.append(problem)
    if name == "migrate":
        if service.get("restart") != "no":
            problems.append("a one-shot: restart must be 'no'")
    elif name != "simulator":
        migrate = (service.get("depends_on") or {}).get("migrate", {})
        if migrate.get("condition") != "service_completed_successfully":
            problems.append("does not wait for migrate (service_completed_successfully)")
    return problems


def _worker_problems(herald: Mapping[str, Mapping[str, Any]]) -> list[str]:
    problems = []
    covered: list[str] = []
    for name, service in herald.items():
        command = list(service.get("command", []))
        if command[:1] not in (["worker"], ["dispatcher"], ["run"]):
            continue
        environment = service.get("environment") or {}
        if "HERALD_ENGINE__PROBE_PORT" not in environment:
            problems.append(f"{name}: no probe port: its healthcheck and /metrics have none")
        problems += [f"{name}: {p}" for p in _drain_problems(service, environment)]
        if command[0] == "worker":
            if "--platforms" not in command:
                problems.append(f"{name}: a worker of every platform: give --platforms")
                continue
            platforms = command[command.index("--platforms") + 1].split(",")
            covered += platforms
            problems += [f"{name}: {p}" for p in _timeout_problems(platforms, environment)]
    missing = {p.value for p in Platform} - set(covered)
    if missing:
        problems.append(f"no worker publishes to {sorted(missing)}")
    return problems


#: The engine's stop (herald.engine.engine.Engine._shutdown) runs these phases one after the
#: other, each bounded by engine.shutdown_grace_s: the requests in flight end (pool.drain), the
#: jobs still held are handed back to the store (_hand_back, within the grace while the store
#: is away), the outcome writer writes what is pending (writer.close), the engine leaves the
#: registry (deregister). Only the first waits in a healthy system; the others take the whole
#: grace while the store is away, so the worst case is all four.
STOP_PHASES = 4
#: Closing the broker link and the store's connections after the phases, with room for one
#: store call that began before a phase's deadline.
CLOSE_S = 30.0


def worst_case_drain_s(engine_grace_s: float, webhooks_grace_s: float) -> float:
    """How long an engine process may take to exit after SIGTERM: the engine's phases, the
    webhook sender's drain beside them (it runs side by side), then the closing."""
    return max(STOP_PHASES * engine_grace_s, webhooks_grace_s) + CLOSE_S


def _timeout_problems(platforms: Sequence[str], environment: Mapping[str, str]) -> list[str]:
    """A worker's requests in flight get long enough to run their course on SIGTERM: its
    engine.shutdown_grace_s is at least its platforms' request timeout (a YouTube upload cut
    short wastes the quota its upload session cost)."""
    grace_s = float(
        environment.get("HERALD_ENGINE__SHUTDOWN_GRACE_S", EngineSettings().shutdown_grace_s)
    )
    problems = []
    for platform in platforms:
        field = Settings.model_fields.get(platform.strip())
        model = None if field is None else field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue  # an unknown platform: _platforms_problem's
        timeout_s = float(model.model_fields["timeout_s"].default)
        if grace_s < timeout_s:
            problems.append(
                f"shutdown_grace_s {grace_s:g} < {platform}'s request timeout {timeout_s:g}"
            )
    return problems


def _drain_problems(service: Mapping[str, Any], environment: Mapping[str, str]) -> list[str]:
    """Docker kills a container stop_grace_period (default 10 s) after SIGTERM: the engine's
    worst-case stop (:func:`worst_case_drain_s`) must end before."""
    engine_s = float(
        environment.get("HERALD_ENGINE__SHUTDOWN_GRACE_S", EngineSettings().shutdown_grace_s)
    )
    webhooks_s = float(
        environment.get("HERALD_WEBHOOKS__SHUTDOWN_GRACE_S", WebhookSettings().shutdown_grace_s)
    )
    grace_s = duration_s(service.get("stop_grace_period", "10s"))
    drain_s = worst_case_drain_s(engine_s, webhooks_s)
    if grace_s < drain_s:
        return [f"stop_grace_period {grace_s:g}s does not outlast the {drain_s:g}s drain"]
    return []


def dockerignore_problems(dockerfile_path: Path, ignore_path: Path) -> list[str]:
    """The build context is an allow-list: ``.dockerignore`` excludes everything (``*``) and
    lets in exactly what the Dockerfile copies, so no local database, ``.env`` or cache can
    reach a layer."""
    rules = [
        line.strip()
        for line in ignore_path.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not rules or rules[0] != "*":
        return [".dockerignore does not start by excluding everything (*)"]
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set()
    for command in dockerfile.parse_file(str(dockerfile_path)):
        if command.cmd.upper() in ("COPY", "ADD") and not any(
            flag.startswith("--from") for flag in command.flags
        ):
            copied |= {source.rstrip("/") for source in command.value[:-1]}
    problems = [f"{path}: copied, but .dockerignore keeps it out" for path in copied - allowed]
    problems += [f"{path}: let into the context, never copied" for path in allowed - copied]
    return sorted(problems)
