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
        match = _COMPOSE_RUN.search(line)
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
