"""A PostgreSQL primary and its streaming replica, of one test's own.

The primary is initialised into a temporary directory (``initdb``, trust authentication,
``wal_level=replica``) and started on a free port; the replica is a ``pg_basebackup -R`` of
it into a directory of its own, started on another port: a real standby that streams the
primary's WAL and replays it, as in production. Both are stopped and removed when the block
ends, however it ends. The binaries are Debian's (``/usr/lib/postgresql/<version>/bin``);
PostgreSQL refuses to run as root, so a root test runs them as the ``postgres`` user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

DATABASE = "herald"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no PostgreSQL binaries: apt-get install postgresql")
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """One PostgreSQL server of the pair."""

    name: str
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"


@dataclass
class ReplicaPair:
    root: Path
    primary: Server
    standby: Server

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A PostgreSQL program, as the ``postgres`` user when the test runs as root."""
        command = [str(_bin_dir() / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=60, check=check, cwd=self.root
        )

    def start(self, server: Server) -> None:
        log = self.root / f"{server.name}.log"
        self.run("pg_ctl", "-D", str(server.data), "-l", str(log), "-w", "-t", "30", "start")

    def stop(self, server: Server, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(server.data), "-m", mode, "-w", "stop", check=False)

    def promote(self) -> None:
        self.run("pg_ctl", "-D", str(self.standby.data), "-w", "promote")

    @property
    def failover_url(self) -> str:
        """Both servers, the writable one chosen at each connection (libpq's multi-host
        form, which asyncpg reads): after a promotion, the new primary."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/{DATABASE}?target_session_attrs=read-write"

    async def make_synchronous(self) -> None:
        """Commit only once the standby has the WAL on disk: a primary lost at any moment
        then loses no committed transaction (what a failover without loss needs)."""
        conn = await asyncpg.connect(self.primary.url)
        try:
            await conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            await conn.execute("SELECT pg_reload_conf()")
            # Not taken for granted: a run on asynchronous replication would pass most of
            # the time here (local streaming is near instant) and prove nothing.
            state = "SELECT sync_state FROM pg_stat_replication"
            for _ in range(100):
                if await conn.fetchval(state) == "sync":
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"the standby is not synchronous: {await conn.fetchval(state)}")
        finally:
            await conn.close()


def _configure(server: Server, socket_dir: Path) -> None:
    settings = {
        "port": str(server.port),
        "listen_addresses": "'127.0.0.1'",
        "unix_socket_directories": f"'{socket_dir}'",
        "wal_level": "replica",
        "max_wal_senders": "4",
        "hot_standby": "on",
        "shared_buffers": "32MB",
        "max_connections": "60",
        # A test's cluster, thrown away afterwards: no waiting on the disk. A server stopped
        # with -m immediate still leaves its files with the operating system, so nothing a
        # commit returned for is lost by it.
        "fsync": "off",
        "full_page_writes": "off",
        "log_min_messages": "warning",
    }
    with (server.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write("\n# herald test rig\n")
        for key, value in settings.items():
            conf.write(f"{key} = {value}\n")


@contextlib.contextmanager
def replica_pair() -> Iterator[ReplicaPair]:
    """A running primary with a database ``herald`` and its running streaming replica."""
    root = Path(tempfile.mkdtemp(prefix="herald-replica-"))
    pair = ReplicaPair(
        root,
        Server("primary", root / "primary", _free_port()),
        Server("standby", root / "standby", _free_port()),
    )
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    started: list[Server] = []
    try:
        pair.run("initdb", "-D", str(pair.primary.data), "-U", "postgres", "-A", "trust", "-N")
        _configure(pair.primary, root)
        pair.start(pair.primary)
        started.append(pair.primary)
        pair.run("createdb", "-h", "127.0.0.1", "-p", str(pair.primary.port), DATABASE)
        pair.run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(pair.primary.port), "-U", "postgres"),
            *("-D", str(pair.standby.data), "-R", "-X", "stream", "-N", "-c", "fast"),
        )
        # The copy carries the primary's port; the standby gets its own.
        with (pair.standby.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"port = {pair.standby.port}\n")
        pair.start(pair.standby)
        started.append(pair.standby)
        _wait_streaming(pair)
        yield pair
    finally:
        for server in reversed(started):
            pair.stop(server, "immediate")
        shutil.rmtree(root, ignore_errors=True)


def _wait_streaming(pair: ReplicaPair, within_s: float = 30.0) -> None:
    """Until the primary sees its standby streaming."""
    deadline = time.monotonic() + within_s
    query = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
    while True:
        found = pair.run(
            *("psql", "-h", "127.0.0.1", "-p", str(pair.primary.port), "-U", "postgres"),
            *("-d", DATABASE, "-Atc", query),
        )
        if found.stdout.strip() == "1":
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the standby never started streaming")
        time.sleep(0.1)
