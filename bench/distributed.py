"""The distributed mode against the embedded engine: same run, same simulator settings.

    python bench/distributed.py                         # throughput, then quota use
    python bench/distributed.py --part throughput --posts 10000 --reps 3
    python bench/distributed.py --part quota

**Throughput.** Facebook Page posts over 40 Pages, all due at once, simulator latency about
2 ms, limits wide open: the embedded engine (``herald run`` on PostgreSQL, limits in memory)
and one dispatcher with 1, 2 and 4 ``herald worker`` processes through each broker (Redis
Streams; RabbitMQ quorum queues), limits shared through Redis. The processes start with
nothing due; the posts are written once every one is registered, and the clock and the CPU
counters run from then until the simulator holds every post: start-up costs are left out.
CPU is read from /proc for every Herald process, and apart for the broker's and the limits'
servers (a Redis or RabbitMQ of the run's own). Rounds interleave the configurations, and each
configuration's CPU is compared with the embedded engine's of the same round.

**Quota use.** Three workers (two restricted to some platforms) through Redis Streams, no
per-engine share of anything, against limits small enough to bind (chaos's TIGHT: 200 calls an
hour for the Facebook app, 15 Instagram publishes a day, 20 LinkedIn posts a day per member, 6
YouTube uploads a day) and twice as many posts as they allow, no faults. Once nothing more can
go out, each quota's use is read from the simulator's audit: the share of it used (at least
95 % is the goal) and how often it was exceeded (never).

Results go to bench/results/distributed-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from herald.config import Settings
from herald.constants import LIMITS_KEY_PREFIX
from herald.demo.chaos.fleet import EngineFleet, Member
from herald.demo.chaos.scenario import (
    ENGINE,
    TIGHT,
    engine_env,
    merged,
    simulator_channels,
    tight_workload,
)
from herald.demo.fidelity import LISTING_LAG
from herald.demo.servers import OwnRabbit, OwnRedis
from herald.demo.simulator_process import SimulatorProcess
from herald.domain import Channel, Content, NewPost, Platform, Post, new_id, utcnow
from herald.logs import configure_logging
from herald.service.credentials import SecretsFile
from herald.simulator import LatencyModel, SimulatorConfig
from herald.states import DeliveryState
from herald.stores.postgres import PostgresStore

RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
DEFAULT_PG_URL = os.environ.get(
    "HERALD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
_TICK = os.sysconf("SC_CLK_TCK")
#: Limits wide open for the throughput part: the Graph app's hourly calls scale with its users.
_OPEN = {"facebook": {"app_daily_active_users": 100_000, "page_engaged_users": 1000}}
_PAGES = 40


# -- CPU from /proc ----------------------------------------------------------------------------
def cpu_s(pids: list[int]) -> float:
    """User and system CPU seconds of ``pids`` and their waited-for children."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # after the name: state is field 3, utime 14, stime 15, cutime 16, cstime 17
        total += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return total / _TICK


def group_pids(pgid: int) -> list[int]:
    """Every process of the process group ``pgid`` (a RabbitMQ node: its script and VM)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


# -- one configuration ------------------------------------------------------------------------
class Servers:
    """The broker and the limits' Redis of one run (none for the embedded engine)."""

    def __init__(self, broker: str, work: Path) -> None:
        self.broker = broker
        self.redis = OwnRedis() if broker != "none" else None
        self.rabbit = OwnRabbit(work) if broker == "rabbitmq" else None

    def start(self) -> None:
        if self.redis is not None:
            self.redis.start()
        if self.rabbit is not None:
            self.rabbit.start()

    def stop(self) -> None:
        for server in (self.redis, self.rabbit):
            if server is not None:
                server.stop()

    def settings(self) -> dict[str, dict[str, Any]]:
        if self.redis is None:
            return {}
        url = self.rabbit.url if self.rabbit is not None else self.redis.url
        return {
            "broker": {"url": url},
            "limits": {
                "backend": "redis",
                "redis_url": self.redis.url,
                "redis_prefix": f"{LIMITS_KEY_PREFIX}:bench",
            },
        }

    def pids(self) -> list[int]:
        pids = []
        if self.redis is not None and self.redis.process is not None:
            pids.append(self.redis.process.pid)
        if self.rabbit is not None and self.rabbit.process is not None:
            pids += group_pids(self.rabbit.process.pid)
        return pids


def members(broker: str, workers: int, env: dict[str, str], only: list[str]) -> list[Member]:
    if broker == "none":
        return [Member(("run",), env)]
    args: tuple[str, ...] = ("worker",) if not only else ("worker", "--platforms", only[0])
    out = [Member(("dispatcher",), env)]
    for index in range(workers):
        if len(only) > 1 and index < len(only):
            out.append(Member(("worker", "--platforms", only[index]), env))
        else:
            out.append(Member(args, env))
    return out


async def new_store(pg_url: str) -> PostgresStore:
    store = PostgresStore(pg_url, schema=f"herald_bench_{secrets.token_hex(4)}", pool_size=2)
    await store.open()
    return store


async def drop(store: PostgresStore, pg_url: str) -> None:
    await store.close()
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {store.schema} CASCADE")
    finally:
        await conn.close()


async def until_registered(store: PostgresStore, count: int, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while len(await store.list_engines()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} engine processes did not register")
        await asyncio.sleep(0.2)  # other processes: nothing here can be woken by them


async def throughput_once(
    sim: SimulatorProcess, channels: list[Channel], secrets_file: SecretsFile, **run: Any
) -> dict[str, Any]:
    broker, workers, posts, pg_url = run["broker"], run["workers"], run["posts"], run["pg_url"]
    store = await new_store(pg_url)
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as tmp:
        servers = Servers(broker, Path(tmp))
        await asyncio.to_thread(servers.start)
        fleet: EngineFleet | None = None
        try:
            await store.add_channels(channels)
            overrides = await sim.client.settings_overrides()
            sections = merged(overrides, _OPEN, servers.settings())
            database = {"HERALD_DATABASE_URL": f"{pg_url}?schema={store.schema}"}
            env = engine_env(sections, database)
            fleet = EngineFleet(members(broker, workers, env, ["facebook"]))
            await fleet.start()
            await until_registered(store, len(fleet.pids()))
            before = await sim.client.audit.summary()
            cpu0, server0 = cpu_s(fleet.pids()), cpu_s(servers.pids())
            dispatcher0 = cpu_s(fleet.pids("dispatcher"))
            started = time.monotonic()
            await store.add_posts(_posts(channels, posts))
            looks = 0
            while (await sim.client.audit.summary())["posts"] - before["posts"] < posts:
                if time.monotonic() - started > 600:
                    raise TimeoutError("the posts were not all published within 10 minutes")
                await asyncio.sleep(0.1)
                looks += 1
                if looks % 10 == 0 and (await store.count_by_state()).get(DeliveryState.FAILED):
                    raise RuntimeError(
                        f"a delivery failed: the run cannot be compared ({await _why(store)})"
                    )
            elapsed = time.monotonic() - started
            cpu, server = cpu_s(fleet.pids()) - cpu0, cpu_s(servers.pids()) - server0
            dispatcher = cpu_s(fleet.pids("dispatcher")) - dispatcher0
            after = await sim.client.audit.summary()
        finally:
            if fleet is not None:
                await fleet.stop()
            await asyncio.to_thread(servers.stop)
            await drop(store, pg_url)
    return {
        "config": _name(broker, workers),
        "deliveries_per_s": round(posts / elapsed, 1),
        "cpu_s_per_1k": round(cpu / posts * 1000, 3),
        "dispatcher_cpu_s_per_1k": round(dispatcher / posts * 1000, 3),
        "server_cpu_s_per_1k": round(server / posts * 1000, 3),
        "duplicates": (after["duplicates"] + after["duplicates_refused"])
        - (before["duplicates"] + before["duplicates_refused"]),
        "limit_violations": after["limit_violations"] - before["limit_violations"],
    }


async def _why(store: PostgresStore) -> str:
    """What the first failed delivery's attempts say."""
    failed = await store.list_deliveries(state=DeliveryState.FAILED, limit=1)
    if not failed:
        return "no failed delivery found"
    attempts = await store.list_attempts(failed[0].id)
    said = "; ".join(f"{a.outcome}: {a.error}" for a in attempts)
    return f"{failed[0].id}: {failed[0].last_error!r} after {said or 'no attempt'}"


def _name(broker: str, workers: int) -> str:
    return "embedded" if broker == "none" else f"{broker} x{workers}"


def _posts(channels: list[Channel], count: int) -> list[NewPost]:
    """``count`` posts due now over ``channels``. Every run posts to the same Pages, and the
    simulator refuses a text a Page already has (Graph's duplicate check): each run's texts
    carry a tag of their own, or a random suffix would repeat across many runs."""
    due = utcnow() - timedelta(seconds=1)
    run = secrets.token_hex(8)
    return [
        NewPost.at(
            Post(new_id("post"), Content(text=f"Distributed bench post {run} {n}")),
            [(new_id("dlv"), channels[n % len(channels)].id)],
            due,
        )
        for n in range(count)
    ]


CONFIGS = ["embedded"] + [f"{b}:{w}" for b in ("redis", "rabbitmq") for w in (1, 2, 4)]


def _config(name: str) -> tuple[str, int]:
    """``embedded`` or ``broker:workers`` as (broker, workers)."""
    if name == "embedded":
        return "none", 1
    broker, _, workers = name.partition(":")
    if broker not in ("redis", "rabbitmq") or not workers.isdigit() or int(workers) < 1:
        raise argparse.ArgumentTypeError(f"{name!r}: embedded, or redis:N or rabbitmq:N")
    return broker, int(workers)


async def throughput(args: argparse.Namespace) -> dict[str, Any]:
    configs = args.configs
    settings = Settings.model_validate(_OPEN)
    config = SimulatorConfig.from_settings(
        settings,
        latency=LatencyModel(median_s=0.002, p99_s=0.01),
        seed=args.seed,
        listing_lag=LISTING_LAG,
    )
    runs: list[dict[str, Any]] = []
    async with SimulatorProcess(config) as sim:
        with tempfile.TemporaryDirectory(prefix="herald-bench-secrets-") as tmp:
            secrets_file = SecretsFile(Path(tmp) / "secrets.json")
            counts = {Platform.FACEBOOK: _PAGES}
            channels = await simulator_channels(sim, counts, secrets_file)
            for rep in range(args.reps):
                for broker, workers in configs:
                    run = await throughput_once(
                        sim,
                        channels,
                        secrets_file,
                        broker=broker,
                        workers=workers,
                        posts=args.posts,
                        pg_url=args.database_url,
                    )
                    run["rep"] = rep
                    runs.append(run)
                    print(json.dumps(run), flush=True)
    return {"runs": runs, "medians": _medians(runs)}


def _medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each configuration's medians over the rounds. ``cpu_vs_embedded`` is the median of its
    ratio to the embedded engine *of the same round*: a shared machine's speed drifts between
    rounds more than one configuration differs from the next within one."""
    by: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by.setdefault(run["config"], []).append(run)
    embedded = {r["rep"]: r["cpu_s_per_1k"] for r in by.get("embedded", [])}
    out = {}
    for name, group in by.items():
        ratios = [r["cpu_s_per_1k"] / embedded[r["rep"]] for r in group if r["rep"] in embedded]
        out[name] = {
            "deliveries_per_s": statistics.median(r["deliveries_per_s"] for r in group),
            "cpu_s_per_1k": statistics.median(r["cpu_s_per_1k"] for r in group),
            "dispatcher_cpu_s_per_1k": statistics.median(
                r["dispatcher_cpu_s_per_1k"] for r in group
            ),
            "server_cpu_s_per_1k": statistics.median(r["server_cpu_s_per_1k"] for r in group),
            "cpu_vs_embedded": round(statistics.median(ratios), 2) if ratios else math.nan,
        }
    return out


# -- quota use --------------------------------------------------------------------------------
async def quota(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.model_validate(merged(TIGHT, ENGINE))
    config = SimulatorConfig.from_settings(
        settings,
        latency=LatencyModel(median_s=0.02, p99_s=0.1),
        seed=args.seed,
        listing_lag=LISTING_LAG,  # what the chaos ENGINE's listing_settle_s waits for
    )
    counts = {
        Platform.FACEBOOK: 4,
        Platform.INSTAGRAM: 4,
        Platform.LINKEDIN: 4,
        Platform.YOUTUBE: 1,
    }
    async with SimulatorProcess(config) as sim:
        with tempfile.TemporaryDirectory(prefix="herald-bench-quota-") as tmp:
            work = Path(tmp)
            secrets_file = SecretsFile(work / "secrets.json")
            channels = await simulator_channels(sim, counts, secrets_file)
            allowed = _allowed(channels)
            demand = 2 * (sum(allowed.values()) + _APP_CALLS)
            workload = await tight_workload(
                sim, channels, demand, start_at=utcnow(), spread_s=10.0, seed=args.seed
            )
            store = await new_store(args.database_url)
            servers = Servers("redis", work)
            await asyncio.to_thread(servers.start)
            fleet: EngineFleet | None = None
            try:
                await store.add_channels(channels)
                overrides = await sim.client.settings_overrides()
                sections = merged(overrides, TIGHT, ENGINE, servers.settings())
                database = {"HERALD_DATABASE_URL": f"{args.database_url}?schema={store.schema}"}
                only = ["facebook,instagram", "linkedin,youtube"]
                fleet = EngineFleet(members("redis", 3, engine_env(sections, database), only))
                await fleet.start()
                for first in range(0, len(workload.posts), 1000):
                    await store.add_posts(workload.posts[first : first + 1000])
                await _quiet(sim, args.settle_s)
                summary = await sim.client.audit.summary()
                posts = await sim.client.audit.posts()
                requests = await sim.client.audit.requests(Platform.FACEBOOK)
            finally:
                if fleet is not None:
                    await fleet.stop()
                await asyncio.to_thread(servers.stop)
                await drop(store, args.database_url)
    used = Counter((p.platform.value, p.account) for p in posts)
    rows = [
        {"quota": f"{platform} {account}", "allowed": limit, "used": used[platform, account]}
        for (platform, account), limit in sorted(allowed.items())
    ]
    # Facebook: the app's calls in the hour, every Page's together.
    app_calls = sum(1 for r in requests if r.status)
    rows.append({"quota": "facebook app (calls/h)", "allowed": _APP_CALLS, "used": app_calls})
    for row in rows:
        row["share"] = round(row["used"] / row["allowed"], 3)
    return {
        "quotas": rows,
        "least_share": min(r["share"] for r in rows),
        "limit_violations": summary["limit_violations"],
        "refused": summary["refused"],
        "duplicates": summary["duplicates"] + summary["duplicates_refused"],
    }


#: The Graph app's calls an hour: 200 per daily active user (platform-apis.md section 1).
_APP_CALLS = 200 * TIGHT["facebook"]["app_daily_active_users"]


def _allowed(channels: list[Channel]) -> dict[tuple[str, str], int]:
    """Each account's own quota (Facebook Pages share the app's, counted apart)."""
    per = {
        Platform.INSTAGRAM: TIGHT["instagram"]["publishes_per_24h"],
        Platform.LINKEDIN: TIGHT["linkedin"]["member_posts_per_day"],
        Platform.YOUTUBE: TIGHT["youtube"]["insert_calls_per_day"],
    }
    return {
        (c.platform.value, c.external_id): per[c.platform] for c in channels if c.platform in per
    }


async def _quiet(sim: SimulatorProcess, settle_s: float) -> None:
    """Until no post has reached the simulator for ``settle_s``: every quota spent."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < settle_s:
        posts = (await sim.client.audit.summary())["posts"]
        if posts != last:
            last, since = posts, time.monotonic()
        await asyncio.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("throughput", "quota", "both"), default="both")
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--settle-s", type=float, default=20.0)
    parser.add_argument("--database-url", default=DEFAULT_PG_URL)
    parser.add_argument(
        "--configs",
        nargs="+",
        type=_config,
        default=[_config(c) for c in CONFIGS],
        help="embedded, redis:N, rabbitmq:N (default: every one, N = 1, 2, 4)",
    )
    args = parser.parse_args()
    configure_logging("ERROR")
    result: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "args": vars(args)}
    if args.part in ("throughput", "both"):
        result["throughput"] = asyncio.run(throughput(args))
        print(json.dumps(result["throughput"]["medians"], indent=2))
    ok = True
    if args.part in ("quota", "both"):
        result["quota"] = asyncio.run(quota(args))
        print(json.dumps(result["quota"], indent=2))
        q = result["quota"]
        ok = q["limit_violations"] == 0 and q["duplicates"] == 0 and q["least_share"] >= 0.95
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"distributed-{stamp}.json").write_text(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
