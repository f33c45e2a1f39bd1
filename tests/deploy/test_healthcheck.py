"""``herald healthcheck``, the image's HEALTHCHECK: real processes of each kind of role, asked
the way Docker asks them (the same environment, a command that exits 0 or 1)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from herald.config import Settings
from herald.healthcheck import HealthTarget, target
from herald.testing import eventually

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update({"HERALD_DB": str(db), "HERALD_ENGINE__SQLITE_SYNCHRONOUS": "NORMAL"})
    return env


async def herald(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "herald.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def healthcheck(env: dict[str, str], *args: str) -> int:
    check = await herald(env, "healthcheck", "--timeout-s", "2", *args)
    await asyncio.wait_for(check.communicate(), 30)
    assert check.returncode is not None
    return check.returncode


async def stopped(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    await asyncio.wait_for(process.communicate(), 30)


async def test_an_engine_role_is_checked_on_its_probe_port(tmp_path):
    env = base_env(tmp_path / "h.db")
    migrate = await herald(env, "migrate")
    await asyncio.wait_for(migrate.communicate(), 30)
    assert migrate.returncode == 0
    env["HERALD_ENGINE__PROBE_PORT"] = str(free_port())
    assert await healthcheck(env) == 1  # nothing listens yet
    engine = await herald(env, "run")
    try:

        async def healthy() -> bool:
            return await healthcheck(env) == 0

        await eventually(healthy, within_s=30, every_s=0.2)
    finally:
        await stopped(engine)
    assert engine.returncode == 0
    assert await healthcheck(env) == 1  # gone again


async def test_an_api_role_is_checked_on_the_api_port(tmp_path):
    env = base_env(tmp_path / "h.db")
    env["HERALD_SECRET_KEYS"] = Fernet.generate_key().decode()
    env["HERALD_API__PORT"] = str(free_port())
    env["HERALD_API__HOST"] = "0.0.0.0"  # as in the image: the check comes over loopback
    api = await herald(env, "api")
    try:

        async def healthy() -> bool:
            return await healthcheck(env) == 0

        await eventually(healthy, within_s=30, every_s=0.2)
        # --port names another port: nothing answers there
        assert await healthcheck(env, "--port", str(free_port())) == 1
    finally:
        await stopped(api)


async def test_the_simulator_is_checked_on_its_admin_port_and_path(tmp_path):
    env = base_env(tmp_path / "h.db")
    admin = free_port()
    simulator = await herald(env, "simulate", "--port", f"admin={admin}")
    try:

        async def healthy() -> bool:
            return await healthcheck(env, "--port", str(admin), "--path", "/_sim/health") == 0

        await eventually(healthy, within_s=30, every_s=0.2)
        assert await healthcheck(env, "--port", str(admin)) == 1  # no /healthz there: 404
    finally:
        await stopped(simulator)


class _Sick(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def sick_server() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), _Sick)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_an_answer_other_than_200_is_unhealthy(tmp_path, sick_server):
    env = base_env(tmp_path / "h.db")
    env["HERALD_ENGINE__PROBE_PORT"] = str(sick_server)
    assert await healthcheck(env) == 1


async def test_invalid_settings_are_unhealthy_with_docker_s_failing_code(tmp_path):
    env = base_env(tmp_path / "h.db")
    env["HERALD_ENGINE__PROBE_PORT"] = "not a port"
    assert await healthcheck(env) == 1  # Docker reserves 2: it must never be the answer


@pytest.mark.parametrize(
    ("env", "port", "expected"),
    [
        ({}, None, HealthTarget("127.0.0.1", 8080)),
        ({"api": {"host": "0.0.0.0", "port": 9000}}, None, HealthTarget("127.0.0.1", 9000)),
        ({"api": {"host": "::"}}, None, HealthTarget("::1", 8080)),
        ({"api": {"host": "10.1.2.3"}}, None, HealthTarget("10.1.2.3", 8080)),
        (
            {"engine": {"probe_port": 9090, "probe_host": "0.0.0.0"}},
            None,
            HealthTarget("127.0.0.1", 9090),
        ),
        ({"engine": {"probe_port": 9090}}, 8080, HealthTarget("127.0.0.1", 8080)),
    ],
)
def test_the_target_is_the_probe_when_there_is_one_else_the_api(env, port, expected):
    assert target(Settings.model_validate(env), port=port) == expected


def test_an_ipv6_target_is_written_in_brackets():
    assert HealthTarget("::1", 9090).url == "http://[::1]:9090/healthz"
