"""Servers of a run's own, on ports of their own, that it may stop and start again: what a
chaos run restarts (never the machine's shared servers) and what tests that restart a server
use."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["OwnRabbit", "OwnRedis", "free_port"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """``redis-server`` in a child process, keeping nothing on disk (a restart loses every
    key, as a Redis without persistence does)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, within_s: float = 10.0) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                *(server, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + within_s
        while True:  # until it answers: a condition with a deadline
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server on port {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


#: The server itself, not the wrapper that /usr/sbin/rabbitmq-server is (it switches user).
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


class OwnRabbit:
    """``rabbitmq-server`` in a child process (its own process group, stopped by it): its own
    node name, data and logs under ``base``, its own config (the machine's names the shared
    listener) and no plugins."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.dist_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.node = f"herald-test-{secrets.token_hex(4)}@localhost"
        self.process: subprocess.Popen[bytes] | None = None
        (base / "enabled_plugins").write_text("")
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
        }

    def start(self, within_s: float = 40.0) -> None:
        server = SERVER if Path(SERVER).exists() else shutil.which("rabbitmq-server")
        if server is None:
            raise RuntimeError("rabbitmq-server is not installed")
        self.process = subprocess.Popen(
            [server],
            env=self._env(),
            cwd=self.base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + within_s
        while True:  # until it speaks AMQP: a condition with a deadline
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"AMQP\x00\x00\x09\x01")
                    if conn.recv(1):  # connection.start: the broker is up
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"rabbitmq-server on port {self.port} did not start")
            time.sleep(0.1)

    def stop(self, within_s: float = 30.0) -> None:
        """Stop the node (the whole process group: the script and the Erlang VM) and return
        once its port is closed."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + within_s
        while self._listening() or self.process.poll() is None:
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same ports and data: quorum queues keep what they
        held, as a broker restarted by its operator does."""
        self.stop()
        self.start()

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False
