"""The servers a distributed chaos run restarts: a broker and a Redis of its own, each on a
port of its own (never the machine's shared servers), and the one-off events that restart
them and kill the dispatcher."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herald.demo.chaos.fleet import EngineFleet
from herald.demo.chaos.scenario import DISTRIBUTED, ChaosOptions
from herald.demo.servers import OwnRabbit, OwnRedis

__all__ = ["Act", "OwnServers", "own_servers"]

Act = Callable[[], Awaitable[None]]


@dataclass
class OwnServers:
    """What the run started: the broker (a restart of it is an event), the Redis of the
    shared limits, and the settings that point the processes at them."""

    limits: OwnRedis | None = None
    restart_broker: Callable[[], None] | None = None
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def limits_url(self) -> str | None:
        return None if self.limits is None else self.limits.url

    def events(self, fleet: EngineFleet, rng: random.Random) -> list[tuple[str, Act]]:
        """The one-off events of the run: the dispatcher killed, the broker restarted, the
        limits' Redis restarted (none without a broker)."""
        if self.limits is None or self.restart_broker is None:
            return []
        limits, restart_broker = self.limits, self.restart_broker

        async def kill_dispatcher() -> None:
            await fleet.kill_one(rng, "dispatcher")

        async def restart_broker_() -> None:
            await asyncio.to_thread(restart_broker)

        async def restart_redis() -> None:
            await asyncio.to_thread(limits.restart)

        return [
            ("dispatcher_kill", kill_dispatcher),
            ("broker_restart", restart_broker_),
            ("redis_restart", restart_redis),
        ]


@asynccontextmanager
async def own_servers(options: ChaosOptions) -> AsyncIterator[OwnServers]:
    """Start what ``options`` needs and stop it on exit: nothing without a broker."""
    if not options.distributed:
        yield OwnServers()
        return
    limits = OwnRedis()
    started: list[OwnRedis | OwnRabbit] = []
    try:
        await asyncio.to_thread(limits.start)
        started.append(limits)
        if options.broker == "redis":
            broker = OwnRedis()
            await asyncio.to_thread(broker.start)
            started.append(broker)
            url, restart = broker.url, broker.restart
        else:
            rabbit = OwnRabbit(Path(await asyncio.to_thread(tempfile.mkdtemp, "herald-rabbit-")))
            await asyncio.to_thread(rabbit.start)
            started.append(rabbit)
            url, restart = rabbit.url, rabbit.restart
        settings = {**DISTRIBUTED, "broker": {**DISTRIBUTED["broker"], "url": url}}
        yield OwnServers(limits, restart, settings)
    finally:
        for server in started:
            await asyncio.to_thread(server.stop)
            if isinstance(server, OwnRabbit):
                await asyncio.to_thread(shutil.rmtree, server.base, True)
