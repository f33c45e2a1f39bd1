"""The engine processes of a chaos run, killed and started again.

A run has either ``herald run`` engines (each does everything) or, in the distributed mode,
one ``herald dispatcher`` and ``herald worker`` processes, some restricted to platforms. A
process the run kills is started again at once, as a supervisor (systemd, Kubernetes) would.
A process that stops by itself is an *exit*: a fault it did not outlive. It is counted, and
started again too, so that one exit does not hide the rest of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["EngineFleet", "Member"]

log = logging.getLogger("herald.chaos")

_STOP_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class Member:
    """One process of the fleet: its ``herald`` command and arguments, its environment."""

    args: tuple[str, ...]
    env: dict[str, str]

    @property
    def role(self) -> str:
        return self.args[0]


class _Process:
    def __init__(self, index: int, member: Member) -> None:
        self.index = index
        self.member = member
        self.process: asyncio.subprocess.Process | None = None
        self.killing = False  # a kill of ours is under way: its exit is expected
        self.tail = ""  # the end of what it wrote on stderr
        self.relay: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.killing = False
        self.tail = ""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "herald.cli",
            *self.member.args,
            env=self.member.env,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self.process.stderr is not None
        self.relay = asyncio.create_task(self._relay(self.process.stderr))

    async def _relay(self, stream: asyncio.StreamReader) -> None:
        """Pass the process's stderr on, keeping its last lines: a process that stops by
        itself says why there (``error: ...``), and the verdict should say it too. Read in
        chunks, not lines (a line may be longer than any buffer), until the pipe closes: a
        pipe nobody drains would stop the process at its next write."""
        while chunk := await stream.read(65_536):
            text = chunk.decode(errors="replace")
            with contextlib.suppress(OSError, ValueError):  # our own stderr closed
                sys.stderr.write(text)
            self.tail = (self.tail + text)[-4096:]

    @property
    def last_words(self) -> list[str]:
        """The last three lines it wrote on stderr."""
        return [line.strip()[:300] for line in self.tail.splitlines() if line.strip()][-3:]


class EngineFleet:
    """The processes of ``members``, on one store."""

    def __init__(self, members: Sequence[Member]) -> None:
        self._members = [_Process(i, m) for i, m in enumerate(members)]
        self._watchers: set[asyncio.Task[None]] = set()
        self._launches: set[asyncio.Future[None]] = set()  # processes being started
        self._stopping = False
        self.kills: dict[str, int] = {}  # by role
        self.exits = 0  # processes that stopped by themselves
        self.exit_codes: list[int] = []
        # Which, and how: "worker 2 exited 1", "dispatcher 0 overstayed its stop": the verdict
        # must say what to look for, not only that something happened.
        self.exit_details: list[str] = []

    @classmethod
    def of_engines(cls, count: int, env: dict[str, str]) -> EngineFleet:
        return cls([Member(("run",), env)] * count)

    def pids(self, role: str | None = None) -> list[int]:
        """The running processes' ids (of ``role``, if given)."""
        return [
            m.process.pid
            for m in self._members
            if m.process is not None
            and m.process.returncode is None
            and role in (None, m.member.role)
        ]

    @property
    def kill_count(self) -> int:
        return sum(self.kills.values())

    async def start(self) -> None:
        for member in self._members:
            await self._launch(member)

    async def kill_one(self, rng: random.Random, role: str | None = None) -> None:
        """SIGKILL a random process (of ``role``, if given), then start it again."""
        chosen = [m for m in self._members if role is None or m.member.role == role]
        if not chosen:
            return
        member = rng.choice(chosen)
        process = member.process
        if process is None or process.returncode is not None:
            return
        member.killing = True
        process.send_signal(signal.SIGKILL)
        await process.wait()
        self.kills[member.member.role] = self.kills.get(member.member.role, 0) + 1
        await self._launch(member)

    async def stop(self) -> None:
        """Stop every process gracefully (SIGTERM), killing any that overstays its grace."""
        self._stopping = True
        # A start under way (a killed process's restart) ends first: stopping now would miss
        # the process it brings, left running past the fleet.
        if self._launches:
            await asyncio.gather(*self._launches, return_exceptions=True)
        for watcher in self._watchers:
            watcher.cancel()
        for member in self._members:
            process = member.process
            if process is None or process.returncode is not None:
                continue
            process.send_signal(signal.SIGTERM)
        for member in self._members:
            process = member.process
            if process is None or process.returncode is not None:
                continue
            try:
                code = await asyncio.wait_for(process.wait(), _STOP_GRACE_S)
            except TimeoutError:
                process.kill()
                code = await process.wait()
                self.exits += 1  # a graceful stop that does not end is a fault too
                self.exit_details.append(
                    f"{member.member.role} {member.index} overstayed its stop ({_STOP_GRACE_S} s)"
                )
            if code != 0:
                self.exit_codes.append(code)
        # Every process has ended, so every stderr pipe closes: the relays finish by
        # themselves; one that does not within a moment is cancelled, never left pending.
        relays = [m.relay for m in self._members if m.relay is not None]
        if relays:
            _, late = await asyncio.wait(relays, timeout=2.0)
            for relay in late:
                relay.cancel()
            await asyncio.gather(*relays, return_exceptions=True)

    async def _launch(self, member: _Process) -> None:
        """Start ``member``'s process and watch it. Shielded: the kill-and-restart task is
        cancelled when the disruptions end, and a spawn cancelled half-way would leave a
        process nobody holds; stop() waits for it instead."""
        launch = asyncio.ensure_future(self._start(member))
        self._launches.add(launch)
        launch.add_done_callback(self._launches.discard)
        await asyncio.shield(launch)

    async def _start(self, member: _Process) -> None:
        await member.start()
        watcher = asyncio.create_task(self._watch(member), name=f"chaos-process-{member.index}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, member: _Process) -> None:
        process = member.process
        if process is None:
            return
        code = await process.wait()
        if member.killing or self._stopping:
            return  # read before any await: a killed process is started again meanwhile
        self.exits += 1  # counted at once: a stop() from here on cancels this watcher
        self.exit_codes.append(code)
        detail = f"{member.member.role} {member.index} exited {code}"
        self.exit_details.append(detail)
        at = len(self.exit_details) - 1
        if member.relay is not None:
            with contextlib.suppress(Exception):  # a relay that died says nothing more
                await asyncio.wait_for(asyncio.shield(member.relay), 2.0)  # its last lines
        if member.last_words:
            self.exit_details[at] = f"{detail}: {' | '.join(member.last_words)}"
        log.error(
            "chaos.process_exit",
            extra={"member": member.index, "role": member.member.role, "code": code},
        )
        with contextlib.suppress(OSError):
            await self._launch(member)
