"""The platform simulator in a process of its own, for the demo and the benchmarks.

Measurements need the simulator off the engine's event loop: on a small machine the two
would otherwise share one core's worth of Python and skew every figure.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from herald.errors import ConfigError
from herald.simulator import SimulatorClient, SimulatorConfig, SimulatorUrls
from herald.simulator.lifecycle import Lifecycle

__all__ = ["SimulatorProcess"]


class SimulatorProcess(Lifecycle):
    """``async with SimulatorProcess(config) as sim``: ``sim.urls``, ``sim.client``."""

    def __init__(self, config: SimulatorConfig, *, start_timeout_s: float = 20.0) -> None:
        self.config = config
        self._start_timeout_s = start_timeout_s
        self._proc: asyncio.subprocess.Process | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="herald-sim-")
        self.urls: SimulatorUrls | None = None
        self._client: SimulatorClient | None = None

    @property
    def client(self) -> SimulatorClient:
        if self._client is None:
            raise ConfigError("the simulator is not running")
        return self._client

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def start(self) -> None:
        config_path = Path(self._dir.name) / "simulator.json"
        config_path.write_text(self.config.model_dump_json())
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "herald.simulator",
            str(config_path),
            stdout=asyncio.subprocess.PIPE,
        )
        stdout = self._proc.stdout
        if stdout is None:
            raise ConfigError("no pipe to the simulator")
        try:
            line = await asyncio.wait_for(stdout.readline(), self._start_timeout_s)
        except TimeoutError as exc:
            await self.stop()
            raise ConfigError("the simulator did not start in time") from exc
        if not line:
            await self.stop()
            raise ConfigError("the simulator exited at start-up")
        self.urls = SimulatorUrls.model_validate(json.loads(line))
        self._client = SimulatorClient(self.urls.admin)

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.stop()
            self._client = None
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        self._dir.cleanup()
