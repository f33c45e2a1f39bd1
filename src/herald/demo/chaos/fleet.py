"""The engines of a chaos run: ``herald run`` processes, killed and started again.

An engine the run kills is started again at once, as a supervisor (systemd, Kubernetes) would.
An engine that stops by itself is an *exit*: a fault the engine did not outlive. It is
counted, and started again too, so that one exit does not hide the rest of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import sys

__all__ = ["EngineFleet"]

log = logging.getLogger("herald.chaos")

_STOP_GRACE_S = 30.0


class _Engine:
    def __init__(self, index: int, env: dict[str, str]) -> None:
        self.index = index
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.killing = False  # a kill of ours is under way: its exit is expected

    async def start(self) -> None:
        self.killing = False
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "herald.cli", "run", env=self.env
        )


class EngineFleet:
    """``count`` engines on one store, each started with ``env``."""

    def __init__(self, count: int, env: dict[str, str]) -> None:
        self._engines = [_Engine(i, env) for i in range(count)]
        self._watchers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.kills = 0
        self.exits = 0  # engines that stopped by themselves
        self.exit_codes: list[int] = []

    async def start(self) -> None:
        for engine in self._engines:
            await self._launch(engine)

    async def kill_one(self, rng: random.Random) -> None:
        """SIGKILL a random engine, then start it again."""
        engine = rng.choice(self._engines)
        process = engine.process
        if process is None or process.returncode is not None:
            return
        engine.killing = True
        process.send_signal(signal.SIGKILL)
        await process.wait()
        self.kills += 1
        await self._launch(engine)

    async def stop(self) -> None:
        """Stop every engine gracefully (SIGTERM), killing any that overstays its grace."""
        self._stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        for engine in self._engines:
            process = engine.process
            if process is None or process.returncode is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(process.wait(), _STOP_GRACE_S)
            except TimeoutError:
                process.kill()
                code = await process.wait()
                self.exits += 1  # a graceful stop that does not end is a fault too
            if code != 0:
                self.exit_codes.append(code)

    async def _launch(self, engine: _Engine) -> None:
        await engine.start()
        watcher = asyncio.create_task(self._watch(engine), name=f"chaos-engine-{engine.index}")
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, engine: _Engine) -> None:
        process = engine.process
        if process is None:
            return
        code = await process.wait()
        if engine.killing or self._stopping:
            return
        self.exits += 1
        self.exit_codes.append(code)
        log.error("chaos.engine_exit", extra={"engine": engine.index, "code": code})
        with contextlib.suppress(OSError):
            await self._launch(engine)
