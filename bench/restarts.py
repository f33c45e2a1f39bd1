"""Crash-restarts under tight quotas: `herald run` SIGKILLed again and again, then drained.

    python bench/restarts.py --kills 10 --seed 1
    python bench/restarts.py --kills 10 --seeds 1 2 3 4          # four seeded runs
    python bench/restarts.py --kills 10 --seed 1 --store postgres  # scripts/services.sh

Each run: a simulator in its own process with tight quotas (LinkedIn 20 posts a member a day,
Instagram 15 publishes an account per 24 h, the Graph app 200 calls an hour, YouTube 6 uploads
a day) and faults on every platform (5 % transient errors, 5 % dropped answers after the
commit, 10 % hangs of 4 s that commit half the time, past Herald's 2 s timeout); a workload
that needs more than every quota; then ``--kills`` engines, each a real ``herald run`` process
SIGKILLed after a seeded 1.5-4 s, and a last ``herald run --burst`` that drains what the quotas
allow. The simulator's audit judges the run from the receiving side: lost, duplicates, limit
violations (requests a platform refused for a limit Herald knew), engine exits (an engine that
stopped before its kill). Every engine rebuilds its limiter from the store at start-up, so a
violation means a replay forgot a request the platform had counted: seeds 1-4 with 10 kills
gave 7, 0, 16 and 13 violations before sends on the wire at a kill, look-up pages and look-ups
followed by a hand-back were recorded, 0 since. On PostgreSQL an engine recovers only claims
whose lease ran out (15 s here), so the last engine starts a lease after the last kill.

One line per run, the totals, and bench/results/restarts[-postgres]-<date>.json. Exit status 1
if any run lost, duplicated, exceeded a limit or saw an engine exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from herald.config import Settings
from herald.demo.chaos.scenario import (
    ENGINE,
    FAULTS,
    TIGHT,
    engine_env,
    merged,
    simulator_channels,
    tight_workload,
)
from herald.demo.fidelity import DUPLICATE_CHECKS, LISTING_LAG, per_platform
from herald.demo.judge import all_deliveries, judge
from herald.demo.simulator_process import SimulatorProcess
from herald.domain import Platform, utcnow
from herald.service.credentials import SecretsFile
from herald.simulator import LatencyModel, SimulatorConfig
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store
from run import _close_store  # bench/run.py: closes a store, drops a PostgreSQL one's schema

RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
DEFAULT_PG_URL = os.environ.get(
    "HERALD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

CHANNELS = {Platform.FACEBOOK: 2, Platform.INSTAGRAM: 2, Platform.LINKEDIN: 2, Platform.YOUTUBE: 1}


def _store(kind: str, work: Path, pg_url: str) -> tuple[Store, dict[str, str]]:
    """The store the bench fills and judges, and how the engines find it."""
    if kind == "postgres":
        schema = f"herald_bench_{secrets.token_hex(4)}"
        return PostgresStore(pg_url, schema=schema), {
            "HERALD_DATABASE_URL": f"{pg_url}?schema={schema}"
        }
    path = work / "herald.db"
    return SQLiteStore(path, synchronous="NORMAL"), {"HERALD_DB": str(path)}


async def _engines(
    env: dict[str, str], kills: int, rng: random.Random, *, owned: bool
) -> dict[str, int]:
    """``kills`` engines, each SIGKILLed after a seeded while, then a draining one. Not
    ``owned`` (PostgreSQL), an engine recovers only the claims whose lease ran out: the last
    one starts once the killed engines' leases have."""
    exits = 0
    for _ in range(kills):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "herald.cli", "run", env=env
        )
        try:
            await asyncio.wait_for(process.wait(), rng.uniform(1.5, 4.0))
            exits += 1  # it stopped before its kill
        except TimeoutError:
            process.send_signal(signal.SIGKILL)
            await process.wait()
    if not owned:
        await asyncio.sleep(ENGINE["engine"]["lease_s"])
    last = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", "run", "--burst", env=env
    )
    code = await asyncio.wait_for(last.wait(), 600)
    return {"engine_exits": exits + (code != 0), "final_exit_code": code}


async def run_once(
    seed: int, kills: int, posts: int, kind: str, pg_url: str = DEFAULT_PG_URL
) -> dict[str, Any]:
    rng = random.Random(seed)
    settings = Settings(**merged(TIGHT, ENGINE))
    sim_config = SimulatorConfig.from_settings(
        settings,
        latency=LatencyModel(median_s=0.05, p99_s=0.4),
        faults=per_platform(FAULTS),
        seed=seed,
        listing_lag=LISTING_LAG,  # what the chaos ENGINE's listing_settle_s waits for
        **DUPLICATE_CHECKS,
    )
    started = time.monotonic()
    async with SimulatorProcess(sim_config) as sim:
        overrides = await sim.client.settings_overrides()
        with tempfile.TemporaryDirectory(prefix="herald-restarts-") as tmp:
            work = Path(tmp)
            channels = await simulator_channels(sim, CHANNELS, SecretsFile(work / "secrets.json"))
            workload = await tight_workload(
                sim, channels, posts, start_at=utcnow(), spread_s=0.0, seed=seed
            )
            store, database = _store(kind, work, pg_url)
            await store.open()
            try:
                await store.add_channels(channels)
                await store.add_posts(workload.posts)
                await store.close()  # the engines' store from here on
                env = engine_env(merged(overrides, TIGHT, ENGINE), database)
                engines = await _engines(env, kills, rng, owned=kind == "sqlite")
                await store.open()
                deliveries, audit = await all_deliveries(store), sim.client.audit
                held, refused = await audit.posts(), await audit.violations()
                elapsed_s, settled_at = time.monotonic() - started, utcnow() + timedelta(seconds=60)
                planned = workload.deliveries
                totals = await audit.summary()
                summary = judge(
                    posts,
                    planned,
                    deliveries,
                    held,
                    refused,
                    elapsed_s=elapsed_s,
                    settled_at=settled_at,
                    # A resend the platform's duplicate check refused is a duplicate too.
                    refused_repeats=totals.get("duplicates_refused", 0),
                )
            finally:
                await _close_store(store, pg_url)
    return {
        "seed": seed,
        "store": kind,
        "kills": kills,
        "deliveries": summary.deliveries,
        "published": summary.published,
        "reconciled": summary.reconciled,
        "deferred": summary.deferred,
        "failed": summary.failed,
        "unconfirmed": summary.unconfirmed,
        "unfinished": summary.unfinished,
        "lost": summary.lost,
        "duplicates": summary.duplicates,
        "limit_violations": summary.limit_violations,
        "violations_by_rule": totals["violations_by_rule"],
        **engines,
        "injected_faults": totals["injected"],
        "by_platform": summary.by_platform,
        "elapsed_s": round(summary.elapsed_s, 1),
    }


def _print_run(run: dict[str, Any]) -> None:
    print(
        f"  seed {run['seed']:<4} {run['store']:<8} kills {run['kills']:<3} "
        f"{run['deliveries']:>4} deliveries: published {run['published']} "
        f"(reconciled {run['reconciled']}), deferred {run['deferred']}, "
        f"failed {run['failed']}, unconfirmed {run['unconfirmed']}  "
        f"lost {run['lost']} dup {run['duplicates']} viol {run['limit_violations']} "
        f"{run['violations_by_rule'] or ''} exits {run['engine_exits']}  "
        f"{run['elapsed_s']:.0f} s",
        flush=True,
    )


_BAD = ("lost", "duplicates", "limit_violations", "engine_exits")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", help="several runs, one per seed")
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL server")
    args = parser.parse_args()
    runs = []
    for seed in args.seeds or [args.seed]:
        run = asyncio.run(run_once(seed, args.kills, args.posts, args.store, args.database_url))
        _print_run(run)
        runs.append(run)
    totals = {key: sum(r[key] for r in runs) for key in _BAD}
    print("  total: " + ", ".join(f"{k} {v}" for k, v in totals.items()), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    label = "restarts" if args.store == "sqlite" else f"restarts-{args.store}"
    out = RESULTS / f"{label}-{stamp}.json"
    out.write_text(json.dumps({"totals": totals, "runs": runs}, indent=2))
    print(f"  written to {out}", flush=True)
    return 1 if any(totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
