"""One chaos run, start to end.

1. the simulator in its own process, with faults on every platform and tight quotas;
2. a store (PostgreSQL in a schema of its own, dropped at the end, or a SQLite file) holding
   channels and posts that fall due over ``spread_s``;
3. ``engines`` ``herald run`` processes (one on SQLite; on PostgreSQL they share their limits
   through Redis, under a key prefix of the run's own, deleted at the end), or with a broker
   one ``herald dispatcher`` and ``workers`` ``herald worker`` processes (the first two
   restricted to some platforms), on a broker and a Redis of the run's own (:mod:`.servers`);
   and the disruptions while the posts fall due and the platform is down: SIGKILLs (of a
   worker, with a broker), every engine session cut, the outage, and with a broker one
   dispatcher kill, one broker restart and one Redis restart;
4. the disruptions called off, the engines left to settle everything they can (what waits for
   a quota window counts as deferred), stopped gracefully, and the run judged.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import redis.asyncio as aioredis

from herald.caps.claims import cap_limits
from herald.config import Settings
from herald.constants import LIMITS_KEY_PREFIX
from herald.demo.cap_judge import cap_violations
from herald.demo.chaos.disruptions import Disruptions
from herald.demo.chaos.fleet import EngineFleet, Member
from herald.demo.chaos.scenario import (
    CAPS,
    ENGINE,
    TIGHT,
    ChaosOptions,
    engine_env,
    merged,
    plan,
    simulator_config,
)
from herald.demo.chaos.servers import Act, OwnServers, own_servers
from herald.demo.chaos.verdict import Verdict, failed_for_outage
from herald.demo.judge import all_deliveries, judge
from herald.demo.simulator_process import SimulatorProcess
from herald.domain import Platform, utcnow
from herald.states import IN_FLIGHT
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store

__all__ = ["run_chaos"]

_LEAD_S = 5.0  # engines start before the first post falls due
_OUTAGE_AFTER_S = 10.0  # the platform goes down this long after the engines start
_SETTLED_HORIZON_S = 120.0  # what is due later than this waits for a quota window
_CHECK_S = 1.0  # how often the settling run is looked at
_ENGINE_APP = "herald-chaos-engine"  # the engines' sessions, told apart from the harness's
#: The platforms of the first two workers of a run with three or more (the others take all).
_WORKER_PLATFORMS = ("facebook,instagram", "linkedin,youtube")


async def run_chaos(options: ChaosOptions) -> Verdict:
    rng = random.Random(options.seed)
    started = time.monotonic()
    async with SimulatorProcess(simulator_config(options)) as sim:
        overrides = await sim.client.settings_overrides()
        with tempfile.TemporaryDirectory(prefix="herald-chaos-") as tmp:
            work = Path(tmp)
            channels, workload = await plan(options, sim, work, lead_s=_LEAD_S)
            store, database = _store(options, work)
            prefix = f"{LIMITS_KEY_PREFIX}:chaos-{secrets.token_hex(4)}"
            await store.open()
            try:
                await store.add_channels(channels)
                for first in range(0, len(workload.posts), 1000):
                    await store.add_posts(workload.posts[first : first + 1000])
                async with own_servers(options) as servers:
                    limits = _limits(options, prefix, servers)
                    sections = merged(overrides, TIGHT, ENGINE, CAPS, limits, servers.settings)
                    fleet = EngineFleet(_members(options, engine_env(sections, database)))
                    disruptions = Disruptions(
                        fleet,
                        sim.client,
                        rng,
                        options.database_url if options.store == "postgres" else None,
                        _ENGINE_APP,
                        kill_role="worker" if options.distributed else None,
                    )
                    await fleet.start()
                    await _disrupt(options, disruptions, servers.events(fleet, rng))
                    await _settled(store, options.settle_timeout_s)
                    await fleet.stop()
                deliveries = await all_deliveries(store)
                audit = sim.client.audit
                totals = await audit.summary()
                summary = judge(
                    len(workload.posts),
                    workload.deliveries,
                    deliveries,
                    await audit.posts(),
                    await audit.violations(),
                    elapsed_s=time.monotonic() - started,
                    settled_at=utcnow() + timedelta(seconds=_SETTLED_HORIZON_S),
                    refused=totals.get("refused", 0),
                    refused_repeats=totals.get("duplicates_refused", 0),
                )
                engines = Settings.model_validate(sections)
                over_caps = cap_violations(
                    await audit.requests(),
                    cap_limits(engines),
                    {p: engines.platform(p).timeout_s for p in Platform},
                )
                return Verdict.of(
                    summary,
                    store=options.store,
                    broker=options.broker,
                    engines=options.engine_count,
                    seed=options.seed,
                    kills=fleet.kill_count,
                    worker_kills=fleet.kills.get("worker", 0),
                    dispatcher_kills=fleet.kills.get("dispatcher", 0),
                    broker_restarts=disruptions.done.get("broker_restart", 0),
                    redis_restarts=disruptions.done.get("redis_restart", 0),
                    db_terminations=disruptions.terminations,
                    outage_s=round(disruptions.outage_s, 1),
                    engine_exits=fleet.exits,
                    engine_exit_details=list(fleet.exit_details),
                    failed_for_outage=await failed_for_outage(store, deliveries),
                    cap_violations=over_caps.violations,
                    cap_peaks=over_caps.most,
                    elapsed_s=round(time.monotonic() - started, 1),
                )
            finally:
                await _close(store, options.database_url)
                await _drop_limits(options, prefix)


def _limits(options: ChaosOptions, prefix: str, servers: OwnServers) -> dict[str, dict[str, Any]]:
    """Engines on one PostgreSQL database share their limits through Redis (with a broker, one
    the run restarts); a lone embedded engine keeps them in memory."""
    if options.store != "postgres":
        return {}
    shared = {
        "redis_url": servers.limits_url or options.redis_url,
        "redis_prefix": prefix,
        "caps_prefix": f"{prefix}:caps",
    }
    return {"limits": {"backend": "redis", **shared}}


def _members(options: ChaosOptions, env: dict[str, str]) -> list[Member]:
    """``herald run`` engines; or with a broker a dispatcher and workers, the first two
    restricted to some platforms (the rest take every platform, so each has two or more)."""
    if not options.distributed:
        return [Member(("run",), env)] * options.engine_count
    members = [Member(("dispatcher",), env)]
    for index in range(options.workers):
        only = _WORKER_PLATFORMS[index] if options.workers > 2 and index < 2 else None
        args = ("worker",) if only is None else ("worker", "--platforms", only)
        members.append(Member(args, env))
    return members


async def _drop_limits(options: ChaosOptions, prefix: str) -> None:
    if options.store != "postgres":
        return
    client = aioredis.Redis.from_url(options.redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()


def _store(options: ChaosOptions, work: Path) -> tuple[Store, dict[str, str]]:
    """The store the run fills and judges, and how the engines find it."""
    if options.store == "postgres":
        schema = f"herald_chaos_{secrets.token_hex(4)}"
        url = f"{options.database_url}?schema={schema}"
        return PostgresStore(url, pool_size=2), {
            "HERALD_DATABASE_URL": f"{url}&application_name={_ENGINE_APP}"
        }
    path = work / "herald.db"
    return SQLiteStore(path, synchronous="NORMAL"), {"HERALD_DB": str(path)}


async def _disrupt(
    options: ChaosOptions, disruptions: Disruptions, events: list[tuple[str, Act]]
) -> None:
    """Disrupt while the posts fall due and the platform is down, then call it off. The
    one-off ``events`` are spread evenly over that time."""
    outage = None
    if options.outage_s > 0:
        outage = (options.outage_platform, _OUTAGE_AFTER_S, options.outage_s)
    until = max(_LEAD_S + options.spread_s, _OUTAGE_AFTER_S + options.outage_s) + 1.0
    step = until / (len(events) + 1)
    disruptions.start(
        kill_every_s=options.kill_every_s,
        terminate_every_s=options.terminate_every_s,
        outage=outage,
        once=[(step * (n + 1), name, act) for n, (name, act) in enumerate(events)],
    )
    try:
        await asyncio.sleep(until)
    finally:
        await disruptions.stop()


async def _settled(store: Store, timeout_s: float) -> None:
    """Wait until nothing is held by an engine and nothing is due within the horizon: every
    delivery settled, or waiting for a quota window. The engines are other processes, so
    there is nothing to be woken by: the store is looked at every second."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = await store.count_by_state()
        next_due = await store.next_due_at()
        held = sum(counts.get(state, 0) for state in IN_FLIGHT)
        horizon = utcnow() + timedelta(seconds=_SETTLED_HORIZON_S)
        if held == 0 and (next_due is None or next_due > horizon):
            return
        await asyncio.sleep(_CHECK_S)


async def _close(store: Store, database_url: str) -> None:
    await store.close()
    if isinstance(store, PostgresStore) and store.schema is not None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {store.schema} CASCADE")
        finally:
            await conn.close()
