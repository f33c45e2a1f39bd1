"""The architecture as a test: the import contracts of pyproject.toml ([tool.importlinter]).

The layers run from the command line down to the vocabulary; the API is HTTP over the
services; the engine, the services and the connectors never reach a store or a driver. The
contracts are checked on the package as it is, and on copies with a violation planted, so a
contract that stopped catching anything would fail here too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import herald

PACKAGE = Path(herald.__file__).parent
CONFIG = PACKAGE.parent.parent / "pyproject.toml"


def lint_imports(src: Path, cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the ``herald`` package found under ``src`` (only ``contracts``, by
    id, when given)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command; "
            "sys.exit(lint_imports_command())",
            "--config",
            str(CONFIG),
            "--no-cache",
            *(arg for contract in contracts for arg in ("--contract", contract)),
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_package_keeps_every_import_contract(tmp_path):
    result = lint_imports(PACKAGE.parent, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("domain.py", "import herald.service.posts", "layers"),  # the vocabulary reaches up
        ("states.py", "import herald.engine.policy", "layers"),
        ("engine/dispatcher.py", "import herald.service.vault", "layers"),
        ("simulator/wire.py", "import herald.platforms.graph", "layers"),
        ("stores/memory.py", "import herald.engine.writer", "layers"),
        ("api/problems.py", "import herald.engine.worker", "api"),
        ("api/deps.py", "import aiohttp", "api"),
        ("engine/writer.py", "import herald.stores.sqlite", "engine"),
        ("engine/worker.py", "import sqlite3", "engine"),
        ("service/posts.py", "import herald.stores.postgres", "service"),
        ("platforms/http.py", "import herald.stores.memory", "connectors"),
        ("engine/worker.py", "import redis", "engine"),
        ("queues/memory.py", "import herald.stores.memory", "queues"),
        ("optimizer/fit.py", "import herald.engine.writer", "optimizer"),
        ("optimizer/model.py", "import herald.stores.memory", "optimizer"),
        ("optimizer/offline.py", "import herald.platforms.graph", "layers"),
    ],
)
def test_a_planted_violation_breaks_its_contract(tmp_path, module, planted, contract):
    copy = tmp_path / "src" / "herald"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{planted}  # planted by the test\n")
    result = lint_imports(tmp_path / "src", tmp_path, contract)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    # Broken by the planted line, not by something else.
    assert "herald." + module.removesuffix(".py").replace("/", ".") in result.stdout
