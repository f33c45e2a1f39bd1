"""A Redis server of a test's own, on a port of its own, that the test may stop and restart
(never the machine's shared one: :class:`herald.demo.servers.OwnRedis`), and the worker
process of the multi-process test."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import redis.asyncio as aioredis

from herald.demo.servers import OwnRedis, free_port
from herald.limits.redis import RedisLimiter
from herald.limits.rules import CalendarQuota, LimitClaim, LimitRule, RollingWindow

__all__ = ["CLAIMS", "DAY", "ROOT", "WINDOW", "OwnRedis", "free_port", "hammer", "run_together"]

ROOT = Path(__file__).parents[2]


async def run_together(
    client: aioredis.Redis, prefix: str, argv: list[str], count: int, *, within_s: float
) -> list[bytes]:
    """Start ``count`` processes of ``argv`` + (ready, go) keys under ``prefix``, let them all
    go at once when each is connected, and return what each printed; none outlives it."""
    ready, go = f"{prefix}:test:ready", f"{prefix}:test:go"
    workers = [
        await asyncio.create_subprocess_exec(
            *argv, ready, go, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(count)
    ]
    try:
        for _ in workers:  # every worker connected and waiting
            assert await client.blpop([ready], timeout=30) is not None
        await client.rpush(go, *[1] * len(workers))
        done = asyncio.gather(*(asyncio.wait_for(w.communicate(), within_s) for w in workers))
        return [out for out, _ in await done]
    finally:
        for w in workers:
            if w.returncode is None:
                w.kill()
                await w.wait()


# -- the worker of the multi-process test -------------------------------------------------------
# Each process reads its own clock before its round trip, so admissions reach Redis a little
# out of time order, as from machines whose clocks differ: the margin covers that (as
# engine.limit_margin_s does between machines).
WINDOW = LimitRule("calls", "calls", "app", RollingWindow(40, 1.0, margin_s=0.05))
DAY = LimitRule("posts", "calls", "app", CalendarQuota(150, "UTC"))
CLAIMS = [LimitClaim("hammer:calls", WINDOW, 1), LimitClaim("hammer:posts", DAY, 1)]


async def hammer(url: str, prefix: str, ready: str, go: str) -> list[float]:
    """Reserve as fast as Redis answers, on the wall clock, until the day quota is spent;
    return the grants' times. Starts when the test says so, with the other workers."""
    client = aioredis.Redis.from_url(url)
    limiter = RedisLimiter(client, prefix=prefix)
    granted: list[float] = []
    try:
        await client.rpush(ready, 1)
        await client.blpop([go], timeout=30)
        while True:
            now = time.time()
            wait = await limiter.reserve(CLAIMS, now)
            if wait == 0.0:
                granted.append(now)
            elif wait > 2.0:  # the day is full
                return granted
    finally:
        await client.aclose()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(hammer(*sys.argv[1:5]))))
