"""Herald's benchmarks: the engine on its store against the platform simulator.

    python bench/run.py                       # every scenario, 3 repetitions each, SQLite
    python bench/run.py --scenario burst --posts 20000 --reps 5
    python bench/run.py --scenario burst --store postgres   # PostgreSQL (scripts/services.sh)
    python bench/run.py --scenario burst --store both       # SQLite, PostgreSQL alternately

With ``--store postgres`` each run gets a fresh schema (dropped afterwards) on
``--database-url`` (default: ``$HERALD_BENCH_DATABASE_URL`` or the local test server).

The simulator runs in its own process so it does not share the engine's event loop. Each run
prints its figures, the median and min-max over repetitions are printed at the end, and
everything is written to bench/results/<scenario>-<date>.json. Figures are judged by the
simulator's audit (lost, duplicates, limit violations are counted on the receiving side).

Scenarios:
- burst: every post due at once, simulator latency ~2 ms: what the engine itself can do.
- burst-latency: every post due at once, latency lognormal median 80 ms, p99 1 s: what the
  per-platform concurrency caps allow against realistic platforms.
- precision: posts due at random instants over a minute, below capacity: how late they go out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from herald.bootstrap import running_engine
from herald.config import Settings
from herald.demo.fidelity import LISTING_LAG, LISTING_SETTLE_S
from herald.demo.judge import all_deliveries, judge, percentile
from herald.demo.simulator_process import SimulatorProcess
from herald.demo.workload import ZONES, MediaUrls, plan_channel_counts, plan_posts, youtube_cap
from herald.domain import Channel, Delivery, MediaKind, NewPost, new_id, utcnow
from herald.logs import configure_logging
from herald.service.credentials import SecretsFile
from herald.simulator import LatencyModel, SimulatorConfig
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store

# HERALD_BENCH_RESULTS: where the JSON goes (the tests smoke-run the scripts into a temp dir).
RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
DEFAULT_PG_URL = os.environ.get(
    "HERALD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Scenario:
    name: str
    posts: int
    latency: LatencyModel
    spread_s: float  # due times spread over this many seconds (0: all at once)
    random_times: bool = False


SCENARIOS = {
    "burst": Scenario("burst", 5000, LatencyModel(median_s=0.002, p99_s=0.02), 0.0),
    "burst-latency": Scenario("burst-latency", 1000, LatencyModel(median_s=0.08, p99_s=1.0), 0.0),
    "precision": Scenario(
        "precision", 600, LatencyModel(median_s=0.08, p99_s=1.0), 60.0, random_times=True
    ),
}


def bench_settings(overrides: dict[str, dict[str, str]]) -> Settings:
    raw: dict[str, Any] = {
        # The simulator's listings show a post within LISTING_LAG: look-ups wait that long.
        "engine": {
            "sqlite_synchronous": "FULL",
            "idle_recheck_s": 1.0,
            "listing_settle_s": LISTING_SETTLE_S,
        },
        **{k: dict(v) for k, v in overrides.items()},
    }
    raw["instagram"].update({"poll_initial_s": 0.05, "poll_max_s": 0.5})
    return Settings(**raw)


async def _channels(
    sim: SimulatorProcess, settings: Settings, posts: int, secrets: SecretsFile
) -> list[Channel]:
    channels = []
    entries = {}
    for i, (platform, count) in enumerate(plan_channel_counts(posts, settings).items()):
        for n in range(count):
            account = await sim.client.add_account(platform)
            channel_id = new_id("ch")
            entries[channel_id] = account.credentials
            channels.append(
                Channel(
                    channel_id,
                    platform,
                    account.external_id,
                    f"{platform.value} {n}",
                    ZONES[(i + n) % len(ZONES)],
                    secrets.ref(channel_id),
                )
            )
    secrets.put_many(entries)
    return channels


def _randomise_due(
    posts: list[NewPost], start: datetime, spread_s: float, seed: int
) -> list[NewPost]:
    rng = random.Random(seed)
    return [
        NewPost.at(p.post, p.targets, start + timedelta(seconds=rng.uniform(0, spread_s)))
        for p in posts
    ]


async def _open_store(kind: str, work: Path, settings: Settings, pg_url: str) -> Store:
    if kind == "postgres":
        store: Store = PostgresStore(pg_url, schema=f"herald_bench_{secrets.token_hex(4)}")
    else:
        store = SQLiteStore(work / "bench.db", synchronous=settings.engine.sqlite_synchronous)
    await store.open()
    return store


async def _close_store(store: Store, pg_url: str) -> None:
    await store.close()
    if isinstance(store, PostgresStore):
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {store.schema} CASCADE")
        finally:
            await conn.close()


async def run_once(
    scenario: Scenario, posts: int, seed: int, kind: str = "sqlite", pg_url: str = DEFAULT_PG_URL
) -> dict[str, Any]:
    configure_logging("ERROR")
    plain = Settings()
    sim_config = SimulatorConfig.from_settings(
        plain, latency=scenario.latency, seed=seed, listing_lag=LISTING_LAG
    )
    async with SimulatorProcess(sim_config) as sim:
        settings = bench_settings(await sim.client.settings_overrides())
        with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
            work = Path(tmp)
            secrets = SecretsFile(work / "secrets.json")
            channels = await _channels(sim, settings, posts, secrets)
            media = MediaUrls(
                await sim.client.media_url(MediaKind.IMAGE, "b.jpg", size=8192),
                await sim.client.media_url(MediaKind.VIDEO, "b.mp4", size=32768),
            )
            start = utcnow() + timedelta(seconds=2)
            workload = plan_posts(
                channels,
                posts,
                start_at=start,
                spread_s=scenario.spread_s,
                media_urls=media,
                youtube_limit=youtube_cap(settings),
                seed=seed,
            )
            new_posts = workload.posts
            if scenario.random_times:
                new_posts = _randomise_due(new_posts, start, scenario.spread_s, seed)
            store = await _open_store(kind, work, settings, pg_url)
            try:
                await store.add_channels(channels)
                for i in range(0, len(new_posts), 2000):
                    await store.add_posts(new_posts[i : i + 2000])
                figures = await _measure(settings, store, start)
                totals = await sim.client.audit.summary()
                deliveries = await all_deliveries(store)
                summary = judge(
                    posts,
                    workload.deliveries,
                    deliveries,
                    await sim.client.audit.posts(),
                    await sim.client.audit.violations(),
                    elapsed_s=figures["drain_s"],
                    settled_at=utcnow() + timedelta(seconds=60),
                    refused_repeats=totals.get("duplicates_refused", 0),
                )
                peak = totals["max_concurrency"]
                dispatch = await _dispatch_lateness(store, deliveries)
                shape = _shape(deliveries, start)
            finally:
                await _close_store(store, pg_url)
    return {
        "scenario": scenario.name,
        "store": kind,
        "posts": posts,
        "deliveries": summary.deliveries,
        "published": summary.published,
        "lost": summary.lost,
        "duplicates": summary.duplicates,
        "limit_violations": summary.limit_violations,
        "deliveries_per_s": round(summary.deliveries / figures["drain_s"], 1),
        "drain_s": round(figures["drain_s"], 3),
        "lateness_p50_s": round(summary.lateness_p50_s, 3),
        "lateness_p99_s": round(summary.lateness_p99_s, 3),
        "lateness_max_s": round(summary.lateness_max_s, 3),
        "cpu_s_per_1k": round(figures["cpu_s"] / summary.deliveries * 1000, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "store_writes": figures["writes"],
        "claim_rounds": figures["rounds"],
        "dispatch_p50_s": round(percentile(dispatch, 0.5), 3),
        "dispatch_p99_s": round(percentile(dispatch, 0.99), 3),
        "dispatch_max_s": round(max(dispatch, default=0.0), 3),
        "max_concurrency": peak,
        "by_platform": summary.by_platform,
        **shape,
    }


def _shape(deliveries: dict[str, Delivery], start: datetime) -> dict[str, list[float]]:
    """What the plots of bench/quick.py draw: deliveries published in each second from
    ``start``, and the lateness (due time to publish, as the store recorded it) at each
    percentile from 0 to 100."""
    published = [d for d in deliveries.values() if d.published_at is not None]
    offsets = [(d.published_at - start).total_seconds() for d in published if d.published_at]
    seconds = [0] * (math.ceil(max(offsets, default=0.0)) + 1)
    for offset in offsets:
        seconds[max(0, math.floor(offset))] += 1
    lateness = sorted(
        (d.published_at - d.due_at).total_seconds() for d in published if d.published_at
    )
    quantiles = [round(percentile(lateness, q / 100), 4) for q in range(101)] if lateness else []
    return {"published_per_s": [float(n) for n in seconds], "lateness_quantiles_s": quantiles}


async def _dispatch_lateness(store: Store, deliveries: dict[str, Delivery]) -> list[float]:
    """Seconds from due time to the request that published: Herald's own share of lateness
    (the rest is the platform's answer time)."""
    out = []
    for delivery in deliveries.values():
        sent = [a for a in await store.list_attempts(delivery.id) if a.outcome == "published"]
        if sent:
            out.append((sent[-1].started_at - delivery.due_at).total_seconds())
    return out


async def _measure(settings: Settings, store: Store, start: datetime) -> dict[str, Any]:
    async with running_engine(settings, store) as engine:
        cpu0 = time.process_time()
        task = asyncio.create_task(engine.run(burst=True, burst_horizon_s=120))
        await task
        cpu = time.process_time() - cpu0
        writes, rounds = engine.writes, engine.dispatcher.rounds
    last = max(
        (d.published_at or d.updated_at or start for d in (await all_deliveries(store)).values()),
        default=start,
    )
    return {
        "drain_s": max(1e-6, (last - start).total_seconds()),
        "cpu_s": cpu,
        "writes": writes,
        "rounds": rounds,
    }


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [
        "deliveries_per_s",
        "drain_s",
        "lateness_p50_s",
        "lateness_p99_s",
        "lateness_max_s",
        "dispatch_p50_s",
        "dispatch_p99_s",
        "dispatch_max_s",
        "cpu_s_per_1k",
        "peak_rss_mb",
    ]
    out: dict[str, Any] = {"runs": len(runs)}
    for key in keys:
        values = [r[key] for r in runs]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    for key in ("lost", "duplicates", "limit_violations"):
        out[key] = sum(r[key] for r in runs)
    return out


def _print_run(run: dict[str, Any]) -> None:
    print(
        f"  {run['scenario']:<14} {run['store']:<8} {run['deliveries']:>6} deliveries  "
        f"{run['deliveries_per_s']:>8.1f}/s  drain {run['drain_s']:>7.2f} s  "
        f"lateness p50 {run['lateness_p50_s']:.3f} p99 {run['lateness_p99_s']:.3f} "
        f"max {run['lateness_max_s']:.3f} s  dispatch p99 {run['dispatch_p99_s']:.3f} s  "
        f"cpu {run['cpu_s_per_1k']:.2f} s/1k  "
        f"rss {run['peak_rss_mb']:.0f} MB  lost {run['lost']} dup {run['duplicates']} "
        f"viol {run['limit_violations']}",
        flush=True,
    )


def _report(name: str, kind: str, posts: int, runs: list[dict[str, Any]]) -> bool:
    """Print the median over ``runs``, write them to bench/results; True if any failed."""
    agg = _aggregate(runs)
    med = {k: v["median"] for k, v in agg.items() if isinstance(v, dict)}
    rate = agg["deliveries_per_s"]
    print(
        f"  median {kind}: {med['deliveries_per_s']:.1f} deliveries/s "
        f"(min {rate['min']:.1f}, max {rate['max']:.1f}); "
        f"lateness p99 {med['lateness_p99_s']:.3f} s "
        f"(dispatch p99 {med['dispatch_p99_s']:.3f} s); "
        f"cpu {med['cpu_s_per_1k']:.2f} s per 1k deliveries",
        flush=True,
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    label = name if kind == "sqlite" else f"{name}-{kind}"
    out = RESULTS / f"{label}-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "scenario": name,
                "store": kind,
                "posts": posts,
                "summary": agg,
                "runs": runs,
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )
    print(f"  written to {out}", flush=True)
    return bool(agg["lost"] or agg["duplicates"] or agg["limit_violations"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--posts", type=int, help="override the scenario's post count")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgres", "both"],
        default="sqlite",
        help="the engine's store; both: SQLite and PostgreSQL alternately, same seeds",
    )
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL server")
    args = parser.parse_args()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    RESULTS.mkdir(exist_ok=True)
    failed = False
    for name in names:
        scenario = SCENARIOS[name]
        posts = args.posts or scenario.posts
        print(f"{name}: {posts} posts, {args.reps} repetitions on {', '.join(kinds)}", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        for rep in range(args.reps):
            # Alternate which store goes first, so drift (heat, caches) favours neither.
            for kind in kinds if rep % 2 == 0 else reversed(kinds):
                run = uvloop.run(
                    run_once(scenario, posts, args.seed + rep, kind, args.database_url)
                )
                _print_run(run)
                runs[kind].append(run)
        for kind in kinds:
            failed |= _report(name, kind, posts, runs[kind])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
