"""The faults of a chaos run, on a schedule: engine kills, database sessions cut, a platform
down, and one-off events (a dispatcher killed, a broker or a Redis restarted). Each runs as a
task until the run calls the disruptions off; a one-off event under way is carried out to its
end first, since a restart cut short would leave its server down and the run would not have
had it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg  # type: ignore[import-untyped]

from herald.demo.chaos.fleet import EngineFleet
from herald.domain import Platform
from herald.simulator import SimulatorClient

__all__ = ["Disruptions"]

log = logging.getLogger("herald.chaos")


@dataclass
class Disruptions:
    fleet: EngineFleet
    simulator: SimulatorClient
    rng: random.Random
    database_url: str | None  # PostgreSQL, whose engine sessions are cut; None: SQLite
    application_name: str  # how the engines' sessions show in pg_stat_activity
    terminations: int = 0  # sessions cut
    outage_s: float = 0.0  # how long the platform was down
    kill_role: str | None = None  # the role of the processes killed on the beat (None: any)
    done: dict[str, int] = field(default_factory=dict)  # one-off events that happened
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _one_offs: list[asyncio.Task[None]] = field(default_factory=list)

    def start(
        self,
        *,
        kill_every_s: float,
        terminate_every_s: float,
        outage: tuple[Platform, float, float] | None,
        once: Sequence[tuple[float, str, Callable[[], Awaitable[None]]]] = (),
    ) -> None:
        """Begin: a kill every ``kill_every_s`` (jittered), every engine session cut every
        ``terminate_every_s``, ``outage`` = (platform, after_s, for_s), and each of ``once``
        = (after_s, name, act): ``act`` once, counted under ``name``."""
        self._tasks.append(asyncio.create_task(self._every(kill_every_s, self._kill)))
        for after_s, name, act in once:
            self._one_offs.append(asyncio.create_task(self._once(after_s, name, act)))
        if self.database_url is not None and terminate_every_s > 0:
            self._tasks.append(asyncio.create_task(self._every(terminate_every_s, self._cut)))
        if outage is not None:
            self._tasks.append(asyncio.create_task(self._outage(*outage)))

    async def stop(self, one_offs_timeout_s: float = 300.0) -> None:
        """Call every disruption off; a platform still down comes back up. One-off events are
        waited for first (a RabbitMQ node takes seconds to restart, many more on a loaded
        machine), the kills going on meanwhile; one not done within ``one_offs_timeout_s`` is
        cancelled and not counted."""
        if self._one_offs:
            await asyncio.wait(self._one_offs, timeout=one_offs_timeout_s)
        tasks = self._tasks + self._one_offs
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for platform in Platform:
            if await self.simulator.is_down(platform):
                await self.simulator.bring_up(platform)

    async def _every(self, period_s: float, act: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(self.rng.uniform(0.5, 1.5) * period_s)
            await act()

    async def _once(self, after_s: float, name: str, act: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(after_s)
        await act()
        self.done[name] = self.done.get(name, 0) + 1
        log.info("chaos.event", extra={"event": name})

    async def _kill(self) -> None:
        await self.fleet.kill_one(self.rng, self.kill_role)

    async def _cut(self) -> None:
        if self.database_url is None:
            return
        conn = await asyncpg.connect(self.database_url)
        try:
            cut = await conn.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = $1) AS cut",
                self.application_name,
            )
        finally:
            await conn.close()
        self.terminations += int(cut)
        log.info("chaos.sessions_cut", extra={"sessions": cut})

    async def _outage(self, platform: Platform, after_s: float, for_s: float) -> None:
        await asyncio.sleep(after_s)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await self.simulator.take_down(platform)
        try:
            await asyncio.sleep(for_s)
        finally:
            await self.simulator.bring_up(platform)
            self.outage_s = loop.time() - began
