"""How late an engine's deliveries go out when it is killed (SIGKILL) while holding claims and
another engine is started at once: ``herald run`` processes against the platform simulator.

    python bench/takeover.py                          # PostgreSQL, the default settings
    python bench/takeover.py --store both             # SQLite too
    python bench/takeover.py --heartbeat-s 0.5 --dead-after-s 2 --posts-per-channel 60

On PostgreSQL the successor is not ``exclusive``: it takes the dead engine's claims once that
engine's heartbeat is older than ``engine.dead_after_s`` (before heartbeats: once their
300 s lease ran out). On SQLite the successor owns the file and recovers every claim at start.
Figures: the claims held at the kill, the time from the kill until every post is held by its
platform, the worst lateness (published minus due) of the deliveries the dead engine held and
of all of them; lost, duplicates and limit violations as the simulator counts them. Written
to bench/results/takeover-<store>-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from herald.config import Settings
from herald.demo.fidelity import LISTING_LAG, LISTING_SETTLE_S
from herald.demo.simulator_process import SimulatorProcess
from herald.domain import Channel, Content, NewPost, Platform, Post, new_id, utcnow
from herald.service.credentials import SecretsFile
from herald.simulator import LatencyModel, SimulatorConfig
from herald.states import DeliveryState
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store

RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
DEFAULT_PG_URL = os.environ.get(
    "HERALD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
# Two Pages and a member: within every quota (LinkedIn's 150 a member a day).
PLATFORMS = (Platform.FACEBOOK, Platform.FACEBOOK, Platform.LINKEDIN)
HELD = (DeliveryState.CLAIMED, DeliveryState.PUBLISHING)


def _env(
    overrides: dict[str, dict[str, str]], url: str, args: argparse.Namespace
) -> dict[str, str]:
    """``herald run``'s environment: the simulator's URLs, this store, two requests at once."""
    simulated = {
        f"HERALD_{section.upper()}__{key.upper()}": value
        for section, values in overrides.items()
        for key, value in values.items()
    }
    env = {
        **os.environ,
        **simulated,
        "HERALD_DATABASE_URL": url,
        "HERALD_LOG_LEVEL": "WARNING",
        "HERALD_FACEBOOK__CONCURRENCY": "2",
        "HERALD_LINKEDIN__CONCURRENCY": "2",
        # The simulator's listings show a post within LISTING_LAG: look-ups wait that long.
        "HERALD_ENGINE__LISTING_SETTLE_S": str(LISTING_SETTLE_S),
    }
    if args.heartbeat_s is not None:
        env["HERALD_ENGINE__HEARTBEAT_S"] = str(args.heartbeat_s)
    if args.dead_after_s is not None:
        env["HERALD_ENGINE__DEAD_AFTER_S"] = str(args.dead_after_s)
    return env


async def _spawn(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "herald.cli", "run", env=env)


async def _until(condition: Any, within_s: float) -> None:
    """Check ``condition()`` every 50 ms until it holds; TimeoutError after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await condition():
        if loop.time() > deadline:
            raise TimeoutError(f"not done within {within_s} s")
        await asyncio.sleep(0.05)


async def _schedule(sim: SimulatorProcess, store: Store, work: Path, per_channel: int) -> datetime:
    vault = SecretsFile(work / "secrets.json")
    channels = []
    for n, platform in enumerate(PLATFORMS):
        account = await sim.client.add_account(platform)
        channel_id = new_id("ch")
        ref = vault.put(channel_id, account.credentials)
        channels.append(
            Channel(channel_id, platform, account.external_id, f"{platform.value} {n}", "UTC", ref)
        )
    await store.add_channels(channels)
    due = utcnow() + timedelta(seconds=1)
    posts = [
        NewPost.at(
            Post(new_id("post"), Content(text=f"Takeover post {i} on {c.name}")),
            ((new_id("dlv"), c.id),),
            due,
        )
        for c in channels
        for i in range(per_channel)
    ]
    await store.add_posts(posts)
    return due


async def run_once(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    config = SimulatorConfig.from_settings(
        Settings(),
        latency=LatencyModel(median_s=0.05, p99_s=0.1),
        seed=args.seed,
        listing_lag=LISTING_LAG,
    )
    total = args.posts_per_channel * len(PLATFORMS)
    schema = f"herald_bench_{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="herald-takeover-") as tmp:
        work = Path(tmp)
        url = (
            f"{args.database_url}?schema={schema}"
            if kind == "postgres"
            else f"sqlite:///{work / 'takeover.db'}"
        )
        store: Store = (
            PostgresStore(url) if kind == "postgres" else SQLiteStore(work / "takeover.db")
        )
        await store.open()
        async with SimulatorProcess(config) as sim:
            try:
                env = _env(await sim.client.settings_overrides(), url, args)
                await _schedule(sim, store, work, args.posts_per_channel)

                async def posts() -> int:
                    return int((await sim.client.audit.summary())["posts"])

                first = await _spawn(env)
                await _until(lambda: _at_least(posts, args.kill_after), 60)
                first.send_signal(signal.SIGKILL)
                await first.wait()
                loop = asyncio.get_running_loop()
                killed_at = loop.time()
                held = {d.id for d in await _deliveries(store) if d.state in HELD}
                second = await _spawn(env)
                try:
                    await _until(lambda: _at_least(posts, total), args.timeout_s)
                    takeover_s = loop.time() - killed_at
                finally:
                    second.send_signal(signal.SIGTERM)
                    await second.wait()
                summary = await sim.client.audit.summary()
                done = await _deliveries(store)
            finally:
                await store.close()
                if kind == "postgres":
                    await _drop(args.database_url, schema)

    def worst(ds: list[Any]) -> float:
        late = [(d.published_at - d.due_at).total_seconds() for d in ds if d.published_at]
        return round(max(late, default=0.0), 3)

    return {
        "store": kind,
        "posts": total,
        "held_at_kill": len(held),
        "takeover_s": round(takeover_s, 3),
        "lateness_max_held_s": worst([d for d in done if d.id in held]),
        "lateness_max_s": worst(done),
        "published": sum(d.state is DeliveryState.PUBLISHED for d in done),
        "lost": total - int(summary["posts"]),
        "duplicates": summary["duplicates"] + summary["duplicates_refused"],
        "limit_violations": summary["limit_violations"],
        "heartbeat_s": args.heartbeat_s,
        "dead_after_s": args.dead_after_s,
    }


async def _at_least(count: Any, wanted: int) -> bool:
    return bool(await count() >= wanted)


async def _deliveries(store: Store) -> list[Any]:
    return await store.list_deliveries(limit=1_000_000)


async def _drop(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="postgres")
    parser.add_argument("--posts-per-channel", type=int, default=120)
    parser.add_argument("--kill-after", type=int, default=40, help="posts published first")
    parser.add_argument("--heartbeat-s", type=float, help="engine.heartbeat_s (default: its own)")
    parser.add_argument("--dead-after-s", type=float, help="engine.dead_after_s")
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL server")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    failed = False
    for kind in ["sqlite", "postgres"] if args.store == "both" else [args.store]:
        run = asyncio.run(run_once(kind, args))
        print(json.dumps(run), flush=True)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        (RESULTS / f"takeover-{kind}-{stamp}.json").write_text(json.dumps(run, indent=2))
        failed |= bool(run["lost"] or run["duplicates"] or run["limit_violations"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
