"""The machine's HTTP ceiling: an aiohttp client alone, publishing the peers' job to the
simulator with the same in-flight budget, no queue and no database.

Every system's throughput is also shown as a share of this figure, measured in the same run
(``python -m bench.peers.run`` calls :func:`ceiling`); alone: ``python -m bench.ceiling``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import time
from typing import Any

import aiohttp
from bench.peers.common import OPEN_LIMITS, Job, item, publish_async

from herald.config import Settings
from herald.demo.simulator_process import SimulatorProcess
from herald.domain import Platform
from herald.simulator import LatencyModel, SimulatorConfig


async def ceiling(job: Job) -> dict[str, Any]:
    """Publish ``job.count`` items from ``job.first`` with ``job.in_flight`` requests in
    flight; deliveries/s and this process's CPU per 1,000 (nothing else runs in it)."""
    todo = iter(range(job.first, job.first + job.count))
    failed = 0

    async def one_at_a_time(http: aiohttp.ClientSession) -> None:
        nonlocal failed
        for n in todo:
            try:
                await publish_async(http, job, item(job, n))
            except Exception:  # counted: the ceiling is what gets through
                failed += 1

    connector = aiohttp.TCPConnector(limit=job.in_flight)
    cpu0, started = time.process_time(), time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(one_at_a_time(http) for _ in range(job.in_flight)))
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu0
    done = job.count - failed
    return {
        "deliveries_per_s": round(done / elapsed, 1),
        "cpu_s_per_1k": round(cpu / max(done, 1) * 1000, 3),
        "failed": failed,
    }


async def _alone(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.model_validate(OPEN_LIMITS)
    config = SimulatorConfig.from_settings(settings, latency=LatencyModel(median_s=0, p99_s=0))
    async with SimulatorProcess(config) as sim:
        accounts = [await sim.client.add_account(Platform.FACEBOOK) for _ in range(40)]
        graph = (await sim.client.settings_overrides())["facebook"]["base_url"]
        job = Job(
            run_id=secrets.token_hex(6),
            graph_url=graph,
            pages=[(a.external_id, a.credentials["access_token"]) for a in accounts],
            database_url="",
            schema="",
            redis_url="",
            count=args.posts,
        )
        return await ceiling(job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=5000)
    print(json.dumps(asyncio.run(_alone(parser.parse_args()))))


if __name__ == "__main__":
    main()
