"""docs/operations.md's commands: every ``herald`` command it shows is one Herald's command
line accepts, and its SQLite backup recipe makes a usable copy of a live database."""

from __future__ import annotations

import re
import shlex
import sqlite3
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from herald.cli import app
from tests.deploy.policy import ROOT, command_problem

DOC = ROOT / "docs" / "operations.md"
#: `docker compose run [--rm] [--no-deps] <service> <herald args>` and `docker run [--rm]
#: herald:<tag> <herald args>`: Herald's image, its entry point `herald`.
_COMPOSE_RUN = re.compile(r"docker (?:compose )?run (?:--\S+ )*(?:api|migrate|herald:\S+) (.+)")
#: `kubectl -n herald exec deploy/<name> -- herald <herald args>`.
_KUBECTL_EXEC = re.compile(r"kubectl (?:-n \S+ )?exec (?:-\S+ )*\S+ -- herald (.+)")
_SYNOPSIS = re.compile(r"^\[|^<|\[,|^\.\.\.$")


def herald_commands(text: str) -> list[list[str]]:
    """The argument lists of every ``herald`` invocation in ``text``: in its shell blocks and
    in its inline code (which may wrap across lines)."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        lines += [line.split("#", 1)[0].strip() for line in block.splitlines()]
    outside = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", outside)]
    found = []
    for line in lines:
        match = _COMPOSE_RUN.search(line) or _KUBECTL_EXEC.search(line)
        if match:
            found.append(shlex.split(match[1]))
        elif line.startswith("herald "):
            found.append(shlex.split(line)[1:])
    # Not the synopses (`herald <role> --help`, `worker --platforms P[,P...] [--region R]`).
    return [argv for argv in found if not any(_SYNOPSIS.search(word) for word in argv)]


def test_the_doc_shows_herald_commands():
    commands = herald_commands(DOC.read_text())
    assert ["admin", "rotate-keys"] in commands
    assert len(commands) >= 5


def test_every_herald_command_in_the_doc_is_real():
    problems = [command_problem(argv) for argv in herald_commands(DOC.read_text())]
    assert [p for p in problems if p is not None] == []


def test_the_kubernetes_rotation_runs_real_commands_in_a_pod():
    commands = herald_commands(section(DOC.read_text(), "Rotate keys"))
    assert ["admin", "new-secret-key"] in commands
    assert commands.count(["admin", "rotate-keys"]) >= 2  # Compose's and Kubernetes'
    planted = "```sh\nkubectl -n herald exec deploy/herald-api -- herald admin rotate-key\n```"
    assert [command_problem(argv) for argv in herald_commands(planted)] == [
        "herald admin rotate-key: no such command"
    ]


def test_a_mistyped_command_in_the_doc_is_named():
    text = DOC.read_text()
    assert "`herald admin rotate-keys`" in text
    assert "herald admin revoke-key key_" in text
    planted = text.replace("`herald admin rotate-keys`", "`herald admin rotate-key`", 1)
    planted = planted.replace("herald admin revoke-key key_", "herald admin revoke-key --now key_")
    problems = [command_problem(argv) for argv in herald_commands(planted)]
    named = [p for p in problems if p is not None]
    assert any("rotate-key: no such command" in p for p in named), named
    assert any("No such option: --now" in p for p in named), named


def backup_script() -> str:
    text = DOC.read_text()
    (script,) = re.findall(r'--entrypoint python herald:local -c "\n(.*?)"\n```', text, re.DOTALL)
    return script


@pytest.mark.slow
def test_the_sqlite_backup_recipe_copies_a_database_in_use(tmp_path):
    data, backup = tmp_path / "data", tmp_path / "backup"
    data.mkdir()
    backup.mkdir()
    db = data / "herald.db"
    made = CliRunner().invoke(app, ["admin", "create-workspace", "Acme", "--db", str(db)])
    assert made.exit_code == 0, made.output
    # A writer holds the database open, mid-transaction, while the recipe runs.
    writer = sqlite3.connect(db)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE workspaces SET name = 'uncommitted'")
    script = backup_script().replace("/var/lib/herald", str(data)).replace("/backup", str(backup))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    writer.rollback()
    writer.close()
    copy = sqlite3.connect(backup / "herald.db")
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        names = {name for (name,) in copy.execute("SELECT name FROM workspaces")}
        assert "Acme" in names
        assert "uncommitted" not in names  # the committed state, not the writer's half
    finally:
        copy.close()


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def upgrade_steps(text: str) -> list[str]:
    """What the "Upgrade" section's shell blocks roll, in order: ``apply:<role>`` and
    ``wait:<role>`` for kubectl (``apply:all`` for an apply of everything), ``up:<services>``
    for Docker Compose."""
    steps = []
    for block in re.findall(r"```sh\n(.*?)```", section(text, "Upgrade"), flags=re.DOTALL):
        for line in block.splitlines():
            words = shlex.split(line.split("#", 1)[0])
            selector = words[words.index("-l") + 1] if "-l" in words[:-1] else None
            role = None if selector is None else selector.partition("=")[2] or "unlabelled"
            if words[:2] == ["kubectl", "apply"]:
                steps.append(f"apply:{role or 'all'}")
            elif words[:2] == ["kubectl", "-n"] and "rollout" in words and role:
                steps.append(f"wait:{role}")
            elif words[:3] == ["docker", "compose", "up"]:
                services = [w for w in words[3:] if not w.startswith("-")]
                steps.append(f"up:{','.join(services) or 'all'}")
    return steps


#: docs/architecture.md: an old worker dead-letters a message in a format it does not read, so
#: the workers are upgraded (and done) before the dispatchers, after the migration.
ORDER = ["migrate", "worker", "dispatcher", "api"]


def upgrade_order_problems(steps: list[str]) -> list[str]:
    problems = []
    applied = [s.split(":", 1)[1] for s in steps if s.startswith("apply:")]
    applied = [role for role in applied if role != "unlabelled"]
    if "all" in applied:
        problems.append("kubectl apply of everything at once rolls the dispatcher with the workers")
    if [r for r in applied if r in ORDER] != ORDER:
        problems.append(f"kubectl rolls {applied}, not {ORDER}")
    for role in ("worker", "dispatcher"):
        after = steps[steps.index(f"apply:{role}") + 1 :] if f"apply:{role}" in steps else []
        if not after or after[0] != f"wait:{role}":
            problems.append(f"no rollout status for the {role}s before the next step")
    ups = [s.split(":", 1)[1] for s in steps if s.startswith("up:")]
    workers = next((i for i, u in enumerate(ups) if "worker-" in u), None)
    dispatcher = next((i for i, u in enumerate(ups) if "dispatcher" in u or u == "all"), None)
    if workers is None or dispatcher is None or workers > dispatcher:
        problems.append(f"Compose starts {ups}: not the workers before the dispatcher")
    elif ups[workers].count("worker-") != 4 or "dispatcher" in ups[workers]:
        problems.append(f"Compose's worker step {ups[workers]} is not every worker alone")
    return problems


def test_the_upgrade_rolls_workers_before_dispatchers():
    assert upgrade_order_problems(upgrade_steps(DOC.read_text())) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # the order this section once gave: everything at once
        (
            "kubectl apply -f herald.yaml -l app.kubernetes.io/component=worker\n",
            "kubectl apply -f herald.yaml\n",
        ),
        (
            "kubectl -n herald rollout status deployment -l app.kubernetes.io/component=worker",
            "echo",
        ),
        (" --no-deps worker-facebook", " --no-deps dispatcher worker-facebook"),
    ],
    ids=["apply everything", "no wait for the workers", "Compose: the dispatcher with them"],
)
def test_an_upgrade_out_of_order_is_named(old, new):
    text = DOC.read_text()
    assert old in section(text, "Upgrade")
    assert upgrade_order_problems(upgrade_steps(text.replace(old, new))) != []
