"""What a big backlog of future deliveries costs: a `herald run` engine idle beside a million
deliveries due from tomorrow over a month, and a burst drained with and without them.

    python bench/backlog.py                                   # SQLite, 1,000,000 deliveries
    python bench/backlog.py --store both --idle-s 60          # PostgreSQL too
    python bench/backlog.py --store postgres --deliveries 200000 --burst 2000

For each store, two runs on a fresh database each: ``empty`` (the same channels, no backlog)
and ``backlog``. The backlog is loaded through the store's batch insert (``add_posts``, what
the API's bulk import and the CLI call: 1,000 posts of two channels each per call, due at
random instants from tomorrow over 30 days, spread over ``--channels`` channels), timed per
tenth of the load (insert rate as the tables grow). Then a real ``herald run`` process starts
with the default engine settings against the platform simulator; once it answers /readyz and
has settled, its CPU over ``--idle-s`` seconds is read from /proc, and on PostgreSQL that of
the database backends serving it (found by the URL's ``application_name`` in pg_stat_activity;
the next-due query's calls and time from pg_stat_statements when the server preloads it).
Last, ``--burst`` deliveries fall due at once and the engine drains them: deliveries/s from
the due time to the last publish, engine (and database) CPU seconds per 1,000 deliveries.

Prints one line per run and the backlog/empty ratios; writes
bench/results/backlog-<store>-<date>.json. Exit status 1 if a burst lost, duplicated or
exceeded a limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from herald.config import Settings
from herald.demo.chaos.scenario import engine_env, merged
from herald.demo.fidelity import LISTING_LAG
from herald.demo.simulator_process import SimulatorProcess
from herald.demo.workload import MediaUrls, plan_posts, youtube_cap
from herald.domain import Channel, Content, MediaKind, NewPost, Platform, Post, new_id, utcnow
from herald.service.credentials import SecretsFile
from herald.simulator import LatencyModel, SimulatorConfig
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store
from run import _channels, _close_store, bench_settings  # bench/run.py

RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
DEFAULT_PG_URL = os.environ.get(
    "HERALD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
POSTS_PER_CALL = 1000  # one add_posts call: a bulk import of 1,000 rows
TARGETS_PER_POST = 2
BACKLOG_PLATFORMS = (Platform.FACEBOOK, Platform.LINKEDIN)  # text-only posts are valid on both
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) a process has used; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Backends:
    """CPU used by the PostgreSQL sessions of one application_name (none on SQLite)."""

    def __init__(self, pg_url: str | None, application_name: str) -> None:
        self._url, self._app = pg_url, application_name
        self._conn: Any = None
        self._start: dict[int, float] = {}
        self.statements = True

    async def open(self) -> None:
        if self._url is not None:
            self._conn = await asyncpg.connect(self._url)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def _cpu(self) -> dict[int, float]:
        rows = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", self._app
        )
        found = {r["pid"]: cpu_s(r["pid"]) for r in rows}
        return {pid: s for pid, s in found.items() if s is not None}

    async def start(self) -> None:
        if self._conn is None:
            return
        self._start = await self._cpu()
        try:
            await self._conn.execute("SELECT pg_stat_statements_reset()")
        except asyncpg.PostgresError:
            self.statements = False  # not installed, or not preloaded: skipped

    async def stop(self) -> dict[str, Any]:
        if self._conn is None:
            return {}
        end = await self._cpu()
        used = sum(s - self._start.get(pid, 0.0) for pid, s in end.items())
        out: dict[str, Any] = {"db_cpu_s": round(used, 3), "db_sessions": len(end)}
        if self.statements:
            row = await self._conn.fetchrow(
                "SELECT coalesce(sum(calls), 0) AS calls, coalesce(sum(total_exec_time), 0) AS ms"
                " FROM pg_stat_statements WHERE query ILIKE '%min(d.next_attempt_at)%'"
                " OR query ILIKE '%SELECT d.next_attempt_at FROM deliveries d%'"
            )
            out |= {"next_due_calls": row["calls"], "next_due_ms": round(row["ms"], 1)}
        return out


def _backlog_posts(channels: list[Channel], count: int, rng: random.Random) -> list[NewPost]:
    start = utcnow() + timedelta(days=1)
    posts = []
    for _ in range(count):
        post = Post(new_id("post"), Content(text=f"Backlog {rng.getrandbits(64):x}"))
        targets = [(new_id("dlv"), c.id) for c in rng.sample(channels, TARGETS_PER_POST)]
        due = start + timedelta(seconds=rng.uniform(0, 30 * 86400))
        posts.append(NewPost.at(post, targets, due))
    return posts


async def load_backlog(
    store: Store, channels: list[Channel], deliveries: int, seed: int
) -> list[dict[str, Any]]:
    """Insert the backlog; the insert rate of each tenth of it as the tables grow, and on
    SQLite the bytes its store wrote to disk per delivery (WAL and checkpoints)."""
    rng = random.Random(seed)
    posts = math.ceil(deliveries / TARGETS_PER_POST)
    step = max(POSTS_PER_CALL, posts // 10)
    steps, done = [], 0
    while done < posts:
        began, written, size = time.perf_counter(), _written_bytes(), min(step, posts - done)
        for i in range(0, size, POSTS_PER_CALL):
            batch = _backlog_posts(channels, min(POSTS_PER_CALL, size - i), rng)
            await store.add_posts(batch)
        done += size
        rate = size * TARGETS_PER_POST / (time.perf_counter() - began)
        figures = {"deliveries": done * TARGETS_PER_POST, "per_s": round(rate)}
        if isinstance(store, SQLiteStore):
            kb = (_written_bytes() - written) / 1024 / (size * TARGETS_PER_POST)
            figures["written_kb_per_delivery"] = round(kb, 2)
        steps.append(figures)
        print(f"    loaded {figures}", flush=True)
    return steps


def _written_bytes() -> int:
    """Bytes this process has had written to disk (the SQLite store writes from it)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(check: Callable[[], Awaitable[bool]], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {within_s} s")
        await asyncio.sleep(0.1)


async def _ready(port: int) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/readyz") as answer,
        ):
            return answer.status == 200
    except aiohttp.ClientError:
        return False


async def _burst(rig: Rig, size: int, recheck_s: float) -> tuple[list[NewPost], datetime]:
    """``size`` deliveries (about) on the simulator's channels, due once the engine has had
    its idle recheck (cross-process work on SQLite is found by it) after they were stored."""
    media = MediaUrls(
        await rig.sim.client.media_url(MediaKind.IMAGE, "b.jpg", size=8192),
        await rig.sim.client.media_url(MediaKind.VIDEO, "b.mp4", size=32768),
    )
    due = utcnow() + timedelta(seconds=recheck_s + 3)
    workload = plan_posts(
        rig.channels,
        math.ceil(size / 1.5),
        start_at=due,
        spread_s=0.0,
        media_urls=media,
        youtube_limit=youtube_cap(rig.settings),
        seed=1,
    )
    for i in range(0, len(workload.posts), POSTS_PER_CALL):
        await rig.store.add_posts(workload.posts[i : i + POSTS_PER_CALL])
    if utcnow() > due - timedelta(seconds=recheck_s):
        print("    (the burst was stored late: its drain includes a wait)", flush=True)
    return workload.posts, due


async def run_once(kind: str, backlog: int, args: argparse.Namespace) -> dict[str, Any]:
    sim_config = SimulatorConfig.from_settings(
        Settings(),
        latency=LatencyModel(median_s=0.002, p99_s=0.02),
        seed=1,
        listing_lag=LISTING_LAG,
    )
    app = f"herald_backlog_{secrets.token_hex(4)}"
    async with SimulatorProcess(sim_config) as sim:
        overrides = await sim.client.settings_overrides()
        settings = bench_settings(overrides)
        with tempfile.TemporaryDirectory(prefix="herald-backlog-") as tmp:
            work = Path(tmp)
            secrets_file = SecretsFile(work / "secrets.json")
            burst_channels = await _channels(
                sim, settings, math.ceil(args.burst / 1.5), secrets_file
            )
            quiet = await _quiet_channels(sim, secrets_file, args.channels)
            if kind == "postgres":
                schema = f"herald_bench_{secrets.token_hex(4)}"
                store: Store = PostgresStore(args.database_url, schema=schema)
                url = f"{args.database_url}?schema={schema}&application_name={app}"
            else:
                store = SQLiteStore(work / "backlog.db")
                url = f"sqlite:///{work / 'backlog.db'}"
            await store.open()
            backends = Backends(args.database_url if kind == "postgres" else None, app)
            try:
                await store.add_channels([*burst_channels, *quiet])
                loaded = await load_backlog(store, quiet, backlog, 7)
                if isinstance(store, PostgresStore) and backlog:
                    await _analyze(args.database_url, store.schema)
                await backends.open()
                ours = {"instagram": {"poll_initial_s": 0.05}}
                if args.idle_recheck_s:
                    ours["engine"] = {"idle_recheck_s": args.idle_recheck_s}
                sections = merged(overrides, ours)
                env = engine_env(sections, {"HERALD_DATABASE_URL": url})
                rig = Rig(sim, store, burst_channels, settings, env, backends)
                figures = await _engine(rig, args)
            finally:
                await backends.close()
                await _close_store(store, args.database_url)
    return {"store": kind, "backlog": backlog, "load": loaded, **figures}


async def _quiet_channels(
    sim: SimulatorProcess, secrets_file: SecretsFile, count: int
) -> list[Channel]:
    """Channels with only future posts (accounts on the simulator, never published to here)."""
    channels, entries = [], {}
    for n in range(count):
        platform = BACKLOG_PLATFORMS[n % len(BACKLOG_PLATFORMS)]
        account = await sim.client.add_account(platform, f"backlog {n}")
        channel_id = new_id("ch")
        entries[channel_id] = account.credentials
        ref = secrets_file.ref(channel_id)
        channels.append(Channel(channel_id, platform, account.external_id, f"b{n}", "UTC", ref))
    secrets_file.put_many(entries)
    return channels


async def _analyze(pg_url: str, schema: str) -> None:
    """What autovacuum would do after a bulk load, done before measuring, not during it."""
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute(f"ANALYZE {schema}.deliveries; ANALYZE {schema}.posts")
    finally:
        await conn.close()


@dataclass(frozen=True)
class Rig:
    """What one run's engine works with, and how it is watched."""

    sim: SimulatorProcess
    store: Store  # the bench's own connection: loads the backlog and the burst
    channels: list[Channel]  # the burst's, on the simulator
    settings: Settings
    env: dict[str, str]  # the engine process's
    backends: Backends


async def _engine(rig: Rig, args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    command = [sys.executable, "-m", "herald.cli", "run", "--probe-port", str(port)]
    engine = await asyncio.create_subprocess_exec(*command, env=rig.env)
    try:
        await _until(lambda: _ready(port), 120)
        await asyncio.sleep(args.settle_s)  # start-up's recovery and replay are behind it
        idle = await _window(engine.pid, rig.backends, lambda: asyncio.sleep(args.idle_s))
        idle["engine_cpu_pct"] = round(100 * idle["engine_cpu_s"] / args.idle_s, 2)
        if "db_cpu_s" in idle:
            idle["db_cpu_pct"] = round(100 * idle["db_cpu_s"] / args.idle_s, 2)
        recheck_s = args.idle_recheck_s or Settings().engine.idle_recheck_s
        posts, due = await _burst(rig, args.burst, recheck_s)
        wanted = sum(len(p.deliveries) for p in posts)

        async def drained() -> bool:
            return int((await rig.sim.client.audit.summary())["posts"]) >= wanted

        burst = await _window(engine.pid, rig.backends, lambda: _until(drained, args.timeout_s))
    finally:
        engine.send_signal(signal.SIGTERM)
        await engine.wait()
    return {
        "idle_s": args.idle_s,
        "idle": idle,
        "burst": await _judge(rig, posts, due, burst),
    }


def rss_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak (VmRSS, VmHWM), in MiB."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    kib = {k: int(v.split()[0]) for k, _, v in (ln.partition(":") for ln in lines) if k in _RSS}
    return {_RSS[k]: round(v / 1024, 1) for k, v in kib.items()}


_RSS = {"VmRSS": "engine_rss_mb", "VmHWM": "engine_peak_rss_mb"}


async def _window(
    pid: int, backends: Backends, wait: Callable[[], Awaitable[Any]]
) -> dict[str, Any]:
    """CPU of the engine (and its database sessions) while ``wait`` runs; its memory after."""
    await backends.start()
    before = cpu_s(pid) or 0.0
    await wait()
    used = (cpu_s(pid) or 0.0) - before
    return {"engine_cpu_s": round(used, 3), **rss_mb(pid), **await backends.stop()}


async def _judge(
    rig: Rig, posts: list[NewPost], due: datetime, cpu: dict[str, Any]
) -> dict[str, Any]:
    found = await rig.store.deliveries_of([p.post.id for p in posts])
    deliveries = [d for ds in found.values() for d in ds]
    last = max((d.published_at or d.updated_at or due for d in deliveries), default=due)
    drain_s = max(1e-6, (last - due).total_seconds())
    summary = await rig.sim.client.audit.summary()
    per_1k = {
        f"{key}_per_1k": round(value / max(1, len(deliveries)) * 1000, 3)
        for key, value in cpu.items()
        if key.endswith("cpu_s")
    }
    return {
        "deliveries": len(deliveries),
        "published": sum(d.published_at is not None for d in deliveries),
        "drain_s": round(drain_s, 3),
        "deliveries_per_s": round(len(deliveries) / drain_s, 1),
        **per_1k,
        "lost": len(deliveries) - int(summary["posts"]),
        "duplicates": summary["duplicates"] + summary["duplicates_refused"],
        "limit_violations": summary["limit_violations"],
    }


def _print_run(run: dict[str, Any]) -> None:
    idle, burst = run["idle"], run["burst"]
    db = f"  db {idle['db_cpu_pct']:>5.2f} %" if "db_cpu_pct" in idle else ""
    calls = (
        f" ({idle['next_due_calls']} next-due, {idle['next_due_ms']} ms)"
        if "next_due_calls" in idle
        else ""
    )
    print(
        f"  {run['store']:<8} backlog {run['backlog']:>8}: idle engine "
        f"{idle['engine_cpu_pct']:>5.2f} %{db}{calls} of a core, "
        f"RSS {idle.get('engine_rss_mb', 0):.0f} MiB; burst {burst['deliveries']} "
        f"in {burst['drain_s']:.2f} s ({burst['deliveries_per_s']:.0f}/s), engine "
        f"{burst['engine_cpu_s_per_1k']:.2f} s per 1k; lost {burst['lost']} "
        f"dup {burst['duplicates']} viol {burst['limit_violations']}",
        flush=True,
    )


def _ratios(empty: dict[str, Any], full: dict[str, Any]) -> dict[str, float]:
    """backlog / empty, for the burst's figures and the load's last tenth against its first."""

    def ratio(a: float, b: float) -> float:
        return round(a / b, 3) if b else float("nan")

    out = {
        key: ratio(full["burst"][key], empty["burst"][key])
        for key in ("drain_s", "deliveries_per_s", "engine_cpu_s_per_1k", "db_cpu_s_per_1k")
        if key in empty["burst"]
    }
    load = full["load"]
    if len(load) > 1:
        out["insert_rate_last_vs_first"] = ratio(load[-1]["per_s"], load[0]["per_s"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--deliveries", type=int, default=1_000_000, help="the backlog")
    parser.add_argument("--channels", type=int, default=200, help="the backlog's channels")
    parser.add_argument("--burst", type=int, default=5000, help="deliveries due at once")
    parser.add_argument("--idle-s", type=float, default=60.0, help="the idle window")
    parser.add_argument("--settle-s", type=float, default=5.0, help="after /readyz, before it")
    parser.add_argument(
        "--idle-recheck-s", type=float, help="engine.idle_recheck_s (default: its own, 5 s)"
    )
    parser.add_argument("--timeout-s", type=float, default=600.0, help="for the burst")
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL server")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = False
    for kind in ["sqlite", "postgres"] if args.store == "both" else [args.store]:
        runs = []
        for backlog in (0, args.deliveries):
            run = asyncio.run(run_once(kind, backlog, args))
            _print_run(run)
            runs.append(run)
            failed |= any(run["burst"][k] for k in ("lost", "duplicates", "limit_violations"))
        ratios = _ratios(*runs)
        print(f"  {kind} backlog / empty: " + ", ".join(f"{k} {v}" for k, v in ratios.items()))
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        out = RESULTS / f"backlog-{kind}-{stamp}.json"
        result = {"store": kind, "ratios": ratios, "runs": runs, "python": sys.version.split()[0]}
        out.write_text(json.dumps(result, indent=2))
        print(f"  written to {out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
