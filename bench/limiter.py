"""The memory limiter versus the Redis limiter: admissions per second and CPU per 1,000.

    .venv/bin/python bench/limiter.py                      # 20,000 admissions, 3 repetitions
    .venv/bin/python bench/limiter.py --admissions 50000 --redis-url redis://host:6379/0

Each admission is what a Facebook publish reserves: the Page's 24-hour window and the app's
1-hour window, plus the three pause keys, on one of 100 Pages; limits are large enough that
every admission is granted (the grant path, which records). Runs on uvloop like the engine:

- memory: one task, one admission after another;
- redis, 1 client: one task (each admission one round trip: the latency figure);
- redis, 16 clients: 16 tasks on one connection pool (what an engine's lanes do).

CPU is the process's own (``time.process_time``) and, for Redis, the server's (``INFO cpu``,
user + system) over the run; the server's figure includes whatever else used it meanwhile.
Keys live under a prefix of the run's own, deleted at the end. The median over repetitions is
printed and written to ``bench/results/limiter-<date>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import uvloop

from herald.limits.memory import MemoryLimiter
from herald.limits.redis import RedisLimiter
from herald.limits.rules import LimitClaim, LimitRule, RollingWindow
from herald.types import RateLimiter

RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
PAGES = 100
PAGE = LimitRule("page_calls", "calls", "channel", RollingWindow(10**9, 86_400.0, 5.0))
APP = LimitRule("app_calls", "calls", "app", RollingWindow(10**9, 3_600.0, 5.0))


def claims(page: int) -> tuple[list[LimitClaim], list[str]]:
    return (
        [
            LimitClaim(f"facebook:page_calls:{page}", PAGE, 1),
            LimitClaim("facebook:app_calls:app", APP, 1),
        ],
        [f"facebook:pause:{page}", "facebook:pause:app", "facebook:pause:outage"],
    )


async def admit(limiter: RateLimiter, count: int, tasks: int) -> None:
    per_task = count // tasks

    async def one(offset: int) -> None:
        for i in range(per_task):
            wanted, pauses = claims((offset + i) % PAGES)
            wait = await limiter.reserve(wanted, time.time(), pauses=pauses)
            assert wait == 0.0, wait

    await asyncio.gather(*(one(t) for t in range(tasks)))


async def server_cpu_s(client: aioredis.Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measure(
    make: Callable[[], Awaitable[tuple[RateLimiter, aioredis.Redis | None]]],
    count: int,
    tasks: int,
) -> dict[str, float]:
    limiter, client = await make()
    server0 = await server_cpu_s(client) if client else 0.0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await admit(limiter, count, tasks)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    out = {"admissions_per_s": count / wall, "client_cpu_ms_per_1000": 1e6 * cpu / count}
    if client is not None:
        server = await server_cpu_s(client) - server0
        out["server_cpu_ms_per_1000"] = 1e6 * server / count
        prefix = limiter.prefix  # type: ignore[attr-defined]
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.unlink(*keys[start : start + 1000])
        await client.aclose()
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    async def memory() -> tuple[RateLimiter, None]:
        return MemoryLimiter(), None

    async def redis() -> tuple[RateLimiter, aioredis.Redis]:
        client = aioredis.Redis.from_url(args.redis_url, max_connections=32)
        limiter = RedisLimiter(client, prefix=f"herald:bench:{secrets.token_hex(4)}")

        async def no_grants() -> list[tuple[float, list[LimitClaim]]]:
            return []

        await limiter.rebuild(no_grants)
        return limiter, client

    cases: dict[str, tuple[Any, int]] = {
        "memory": (memory, 1),
        "redis, 1 client": (redis, 1),
        "redis, 16 clients": (redis, 16),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    for _ in range(args.reps):
        for name, (make, tasks) in cases.items():
            runs[name].append(await measure(make, args.admissions, tasks))
    return {
        name: {key: statistics.median(r[key] for r in reps) for key in reps[0]}
        for name, reps in runs.items()
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admissions", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    figures = uvloop.run(main(args))
    for name, values in figures.items():
        shown = ", ".join(f"{k} {v:,.1f}" for k, v in values.items())
        print(f"{name:>18}: {shown}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    record = {"args": vars(args), "figures": figures}
    (RESULTS / f"limiter-{stamp}.json").write_text(json.dumps(record, indent=2))
