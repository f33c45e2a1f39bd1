"""The roadmap's phase-4 load on one box: 10,000 posts a minute for 5 minutes, sustained.

    python bench/sustained.py                                  # SQLite, then PostgreSQL
    python bench/sustained.py --store sqlite --minutes 1       # a shorter look
    python bench/sustained.py --posts-per-minute 600 --minutes 0.2 --store both   # smoke

Every post (one channel each: a post here is one publication on one platform) is written to
the store ahead of time, then a real ``herald run`` process publishes them to the platform
simulator, which answers after a lognormal latency (median ``--latency-median-ms``, p99
``--latency-p99-ms``). Due times come in per-minute lumps by default: each minute's posts are
all due at its first second, as users of a scheduler pick round times; ``--due even`` spreads
them evenly instead. A lump must be drained before the next one falls due, so the lumps are
the harder case for lateness; the even spread shows the engine's own pace.

The mix (:data:`SHARES`): Facebook Pages half, LinkedIn members 35 %, Instagram accounts
15 %, and a few YouTube uploads (a tenth of a per cent, at most the project's daily quota).
Channels are many and each posts at most :data:`PER_CHANNEL_PER_MINUTE` times a minute and at
most half of its platform's daily quota over the run (LinkedIn 150 posts a day per member,
Instagram 100 publishes per 24 h per account, a Page's 4,800 calls per 24 h).

The concurrency this needs is set as per-channel and per-app caps (:data:`CAPS`; the reasons
are in docs/benchmarks.md, "10,000 posts a minute on one box"); the simulator's request log
judges them from the platforms' side, as the chaos run does.

Per store (SQLite, or a fresh schema of the PostgreSQL server dropped afterwards), figures:
deliveries published in each minute from the first due time and their rate, lateness p50 /
p99 / max (the judge's: from the due time to the platform's answer), lost, duplicates, limit
and cap violations (the simulator's audit), the engine's CPU seconds per 1,000 deliveries
from /proc (and those of the PostgreSQL sessions serving it, and of the whole server), its
peak RSS (VmHWM) and the simulator's CPU. Results: bench/results/sustained-<store>[-even]-
<date>.json. Exit status 1 if a run lost, duplicated, exceeded a limit or a cap, left a
delivery unfinished, or missed the lateness target (p99 under ``--lateness-p99-target-s``,
120 s).
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
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backlog import Backends, _free_port, _ready, _until  # bench/backlog.py
from distributed import cpu_s  # bench/distributed.py
from herald.caps.claims import cap_limits
from herald.config import Settings
from herald.demo.cap_judge import cap_violations
from herald.demo.chaos.scenario import engine_env, merged
from herald.demo.fidelity import LISTING_LAG, LISTING_SETTLE_S
from herald.demo.judge import Summary, all_deliveries, judge
from herald.demo.simulator_process import SimulatorProcess
from herald.demo.workload import ZONES, PlannedDelivery, tag_of, youtube_cap
from herald.domain import (
    Channel,
    Content,
    ContentOverride,
    Media,
    MediaKind,
    NewPost,
    Platform,
    Post,
    new_id,
    utcnow,
)
from herald.service.credentials import SecretsFile
from herald.simulator import LatencyModel, SimulatorConfig
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store
from run import _close_store  # bench/run.py

RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
DEFAULT_PG_URL = os.environ.get(
    "HERALD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
FB, IG, LI, YT = Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN, Platform.YOUTUBE

#: Share of the posts per platform; YouTube gets YOUTUBE_SHARE of them (within its quota).
SHARES = {FB: 0.50, LI: 0.35, IG: 0.15}
YOUTUBE_SHARE = 0.001
#: A channel takes at most this many posts a minute, and half its daily quota over a run.
PER_CHANNEL_PER_MINUTE = 2
QUOTA_SHARE = 0.5

#: The concurrency caps: one request at a time per channel, and per app what the rate needs
#: (Little's law, with room for a lump). ``concurrency`` (per process) is set to the app's
#: cap so that it never binds first. See docs/benchmarks.md for why these are in the rules.
CAPS: dict[str, dict[str, int]] = {
    "facebook": {"channel_concurrency": 1, "app_concurrency": 128, "concurrency": 128},
    "linkedin": {"channel_concurrency": 1, "app_concurrency": 128, "concurrency": 128},
    "instagram": {"channel_concurrency": 1, "app_concurrency": 96, "concurrency": 96},
    "youtube": {"channel_concurrency": 1, "app_concurrency": 4, "concurrency": 4},
}
#: Graph's app budget is 200 calls an hour per daily active user of the app; a product that
#: publishes 10,000 posts a minute has far more than 10,000 (and Page tokens are metered per
#: Page, docs/platforms.md). Every other limit keeps its documented default.
LIMITS: dict[str, dict[str, Any]] = {"facebook": {"app_daily_active_users": 10_000}}
ENGINE: dict[str, dict[str, Any]] = {"engine": {"listing_settle_s": LISTING_SETTLE_S}}
POSTS_PER_CALL = 2000
LOAD_S_PER_POST = 0.0008  # time allowed to write the posts before the first is due


@dataclass(frozen=True)
class Plan:
    posts: list[NewPost]
    deliveries: list[PlannedDelivery]
    first_due: datetime


# -- the workload ---------------------------------------------------------------------------
def platform_counts(total: int, settings: Settings) -> dict[Platform, int]:
    """Posts per platform over the run."""
    youtube = min(youtube_cap(settings) // 2, math.ceil(total * YOUTUBE_SHARE))
    rest = total - youtube
    counts = {p: math.floor(rest * share) for p, share in SHARES.items()}
    counts[FB] += rest - sum(counts.values())
    return {**counts, YT: youtube}


def _daily_quota(platform: Platform, settings: Settings) -> float:
    if platform is IG:
        return settings.instagram.publishes_per_24h
    if platform is LI:
        return settings.linkedin.member_posts_per_day
    if platform is FB:
        return 4800 * settings.facebook.page_engaged_users
    return math.inf  # YouTube's quota is the project's, counted in platform_counts


def channel_counts(
    counts: dict[Platform, int], minutes: float, settings: Settings
) -> dict[Platform, int]:
    """Channels per platform: each takes at most PER_CHANNEL_PER_MINUTE posts a minute and
    QUOTA_SHARE of its daily quota over the run."""
    out = {}
    for platform, posts in counts.items():
        per_minute = posts / max(minutes, 1.0)
        by_rate = math.ceil(per_minute / PER_CHANNEL_PER_MINUTE)
        by_quota = math.ceil(posts / (QUOTA_SHARE * _daily_quota(platform, settings)))
        out[platform] = max(1, by_rate, by_quota) if posts else 0
    return out


def due_times(total: int, per_minute: int, start: datetime, spread: str) -> list[datetime]:
    """Each minute's posts all due at its first second (``minute``), or evenly (``even``)."""
    out: list[datetime] = []
    minute = 0
    while len(out) < total:
        count = min(per_minute, total - len(out))
        base = start + timedelta(minutes=minute)
        if spread == "minute":
            out += [base] * count
        else:
            out += [base + timedelta(seconds=60 * i / per_minute) for i in range(count)]
        minute += 1
    return out


def _content(index: int, platform: Platform, image: str, video: str) -> Post:
    text = f"Post {index} of the sustained load, for {platform.value}. #herald {tag_of(index)}"
    media: tuple[Media, ...] = ()
    link = None
    overrides = {}
    if platform is IG or (platform is FB and index % 4 == 0) or (platform is LI and index % 5 == 0):
        media = (Media(f"{image}{'&' if '?' in image else '?'}i={index}", MediaKind.IMAGE),)
    elif platform is YT:
        clip = Media(f"{video}{'&' if '?' in video else '?'}i={index}", MediaKind.VIDEO)
        overrides[YT] = ContentOverride(media=(clip,), title=f"Sustained load video {index}")
    elif index % 2 == 0:
        link = f"https://example.com/articles/{index}"
    return Post(new_id("post"), Content(text=text, link=link, media=media), overrides=overrides)


def plan(
    channels: dict[Platform, list[Channel]],
    counts: dict[Platform, int],
    *,
    per_minute: int,
    start: datetime,
    spread: str,
    media: tuple[str, str],
    seed: int,
) -> Plan:
    """One post per delivery: platforms shuffled over the run, channels taken in turn."""
    order = [p for p, n in counts.items() for _ in range(n)]
    random.Random(seed).shuffle(order)
    due = due_times(len(order), per_minute, start, spread)
    turn: Counter[Platform] = Counter()
    posts, planned = [], []
    for index, platform in enumerate(order):
        pool = channels[platform]
        channel = pool[turn[platform] % len(pool)]
        turn[platform] += 1
        delivery_id = new_id("dlv")
        post = _content(index, platform, *media)
        posts.append(NewPost.at(post, [(delivery_id, channel.id)], due[index]))
        planned.append(PlannedDelivery(delivery_id, index, channel))
    return Plan(posts, planned, start)


async def make_channels(
    sim: SimulatorProcess, counts: dict[Platform, int], secrets_file: SecretsFile
) -> dict[Platform, list[Channel]]:
    out: dict[Platform, list[Channel]] = {}
    entries = {}
    for platform, count in counts.items():
        accounts = []
        for first in range(0, count, 200):  # the simulator's admin API, 200 at a time
            batch = range(first, min(count, first + 200))
            accounts += await asyncio.gather(*(sim.client.add_account(platform) for _ in batch))
        out[platform] = []
        for n, account in enumerate(accounts):
            channel_id = new_id("ch")
            entries[channel_id] = account.credentials
            zone = ZONES[n % len(ZONES)]
            out[platform].append(
                Channel(
                    channel_id,
                    platform,
                    account.external_id,
                    f"{platform.value} {n}",
                    zone,
                    secrets_file.ref(channel_id),
                )
            )
    secrets_file.put_many(entries)
    return out


# -- one run --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    per_minute: int
    minutes: float
    latency: LatencyModel
    spread: str
    seed: int
    pg_url: str
    lateness_target_s: float
    timeout_s: float


def sections() -> dict[str, dict[str, Any]]:
    """The engine's settings beyond the simulator's addresses."""
    return merged(LIMITS, CAPS, ENGINE)


async def _open_store(kind: str, work: Path, pg_url: str, app: str) -> tuple[Store, dict[str, str]]:
    if kind == "postgres":
        schema = f"herald_bench_{secrets.token_hex(4)}"
        store: Store = PostgresStore(pg_url, schema=schema, pool_size=2)
        url = f"{pg_url}?schema={schema}&application_name={app}"
    else:
        store = SQLiteStore(work / "sustained.db")
        url = f"sqlite:///{work / 'sustained.db'}"
    await store.open()
    return store, {"HERALD_DATABASE_URL": url}


async def run_once(kind: str, options: Options) -> dict[str, Any]:
    settings = Settings.model_validate(merged(LIMITS, CAPS))
    config = SimulatorConfig.from_settings(
        settings, latency=options.latency, seed=options.seed, listing_lag=LISTING_LAG
    )
    total = math.ceil(options.per_minute * options.minutes)
    counts = platform_counts(total, settings)
    app = f"herald_sustained_{secrets.token_hex(4)}"
    async with SimulatorProcess(config) as sim:
        overrides = await sim.client.settings_overrides()
        with tempfile.TemporaryDirectory(prefix="herald-sustained-") as tmp:
            work = Path(tmp)
            channels = await make_channels(
                sim,
                channel_counts(counts, options.minutes, settings),
                SecretsFile(work / "secrets.json"),
            )
            media = (
                await sim.client.media_url(MediaKind.IMAGE, "s.jpg", size=8192),
                await sim.client.media_url(MediaKind.VIDEO, "s.mp4", size=32768),
            )
            start = utcnow() + timedelta(seconds=10 + total * LOAD_S_PER_POST)
            workload = plan(
                channels,
                counts,
                per_minute=options.per_minute,
                start=start,
                spread=options.spread,
                media=media,
                seed=options.seed,
            )
            store, database = await _open_store(kind, work, options.pg_url, app)
            backends = Backends(options.pg_url if kind == "postgres" else None, app)
            try:
                await store.add_channels([c for cs in channels.values() for c in cs])
                for i in range(0, len(workload.posts), POSTS_PER_CALL):
                    await store.add_posts(workload.posts[i : i + POSTS_PER_CALL])
                await backends.open()
                env = engine_env(merged(overrides, sections()), database)
                figures = await _engine(sim, env, backends, workload, options)
                verdict = await _judge(sim, store, workload, figures)
            finally:
                await backends.close()
                await _close_store(store, options.pg_url)
    return {
        "store": kind,
        "posts": total,
        "posts_per_minute": options.per_minute,
        "minutes": options.minutes,
        "due": options.spread,
        "channels": {p.value: len(cs) for p, cs in channels.items()},
        "posts_by_platform": {p.value: n for p, n in counts.items()},
        **verdict,
    }


async def _engine(
    sim: SimulatorProcess,
    env: dict[str, str],
    backends: Backends,
    workload: Plan,
    options: Options,
) -> dict[str, Any]:
    """Start ``herald run``, wait for the first due time, measure until the simulator holds
    every post (or none came for a minute past the last due time, or the timeout)."""
    port = _free_port()
    command = [sys.executable, "-m", "herald.cli", "run", "--probe-port", str(port)]
    engine = await asyncio.create_subprocess_exec(*command, env=env)
    try:
        await _until(lambda: _ready(port), 120)
        late_start = (utcnow() - workload.first_due).total_seconds()
        if late_start > 0:
            print(f"    (the engine was ready {late_start:.1f} s after the first due time)")
        await asyncio.sleep(max(0.0, (workload.first_due - utcnow()).total_seconds()))
        await backends.start()
        cpu0 = _cpu(engine.pid, sim.pid)
        began = time.monotonic()
        complete = await _until_published(sim, workload, options)
        wall = time.monotonic() - began
        cpu1 = _cpu(engine.pid, sim.pid)
        used = {name: cpu1[name] - cpu0[name] for name in cpu0}
        database = await backends.stop()
        rss = _peak_rss_mb(engine.pid)
    finally:
        engine.send_signal(signal.SIGTERM)
        await engine.wait()
    return {
        "complete": complete,
        "wall_s": round(wall, 1),
        "engine_cpu_s": round(used["engine"], 2),
        "simulator_cpu_s": round(used["simulator"], 2),
        "db_cpu_s": database.get("db_cpu_s"),
        "db_server_cpu_s": round(used["db_server"], 2) if "db_cpu_s" in database else None,
        "peak_rss_mb": rss,
    }


async def _until_published(sim: SimulatorProcess, workload: Plan, options: Options) -> bool:
    """True once the simulator holds every planned post; False at the timeout, or once none
    has come for 60 s after the last due time."""
    wanted = len(workload.deliveries)
    last_due = max(p.due_at for p in workload.posts)
    deadline = time.monotonic() + options.timeout_s
    held, progress = 0, time.monotonic()
    while held < wanted:
        totals = await sim.client.audit.summary()
        now_held = int(totals["posts"]) - int(totals["duplicates"])
        if now_held > held:
            held, progress = now_held, time.monotonic()
        stalled = utcnow() > last_due and time.monotonic() - progress > 60
        if stalled or time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)
    return True


def _cpu(engine: int, simulator: int | None) -> dict[str, float]:
    """CPU seconds so far of the engine, the simulator and the PostgreSQL server (its
    processes of the moment: backends opened since are counted whole, ended ones in the
    postmaster's children's time)."""
    return {
        "engine": cpu_s([engine]),
        "simulator": cpu_s([simulator] if simulator is not None else []),
        "db_server": cpu_s(_postgres()),
    }


def _postgres() -> list[int]:
    """The PostgreSQL server's processes on this machine (the postmaster counts the CPU of
    its ended backends), as bench/peers/run.py reads them."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "postgres":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def per_minute(deliveries: Sequence[datetime], start: datetime) -> list[int]:
    """Deliveries published in each minute from ``start`` (the last one partial)."""
    if not deliveries:
        return []
    minutes = [max(0, int((at - start).total_seconds() // 60)) for at in deliveries]
    counts = Counter(minutes)
    return [counts.get(m, 0) for m in range(max(minutes) + 1)]


async def _judge(
    sim: SimulatorProcess, store: Store, workload: Plan, figures: dict[str, Any]
) -> dict[str, Any]:
    audit = sim.client.audit
    totals = await audit.summary()
    deliveries = await all_deliveries(store)
    summary: Summary = judge(
        len(workload.posts),
        workload.deliveries,
        deliveries,
        await audit.posts(),
        await audit.violations(),
        elapsed_s=figures["wall_s"],
        settled_at=utcnow() + timedelta(seconds=60),
        refused=totals.get("refused", 0),
        refused_repeats=totals.get("duplicates_refused", 0),
    )
    engines = Settings.model_validate(merged(LIMITS, CAPS))
    caps = cap_violations(
        await audit.requests(),
        cap_limits(engines),
        {p: engines.platform(p).timeout_s for p in Platform},
    )
    published = [d.published_at for d in deliveries.values() if d.published_at is not None]
    minutes = per_minute(published, workload.first_due)
    done = max(1, summary.published)
    return {
        "deliveries": summary.deliveries,
        "published": summary.published,
        "complete": figures["complete"],
        "per_minute": minutes,
        "per_s_by_minute": [round(n / 60, 1) for n in minutes],
        "drain_s": round(summary.drain_s, 1),
        "lateness_p50_s": round(summary.lateness_p50_s, 3),
        "lateness_p99_s": round(summary.lateness_p99_s, 3),
        "lateness_max_s": round(summary.lateness_max_s, 3),
        "lost": summary.lost,
        "duplicates": summary.duplicates,
        "misrecorded": summary.misrecorded,
        "unfinished": summary.unfinished + summary.failed + summary.unconfirmed,
        "limit_violations": summary.limit_violations,
        "refused": summary.refused,
        "cap_violations": caps.violations,
        "most_in_flight": caps.most,
        "engine_cpu_s_per_1k": round(figures["engine_cpu_s"] / done * 1000, 3),
        "db_cpu_s_per_1k": _per_1k(figures["db_cpu_s"], done),
        "db_server_cpu_s_per_1k": _per_1k(figures["db_server_cpu_s"], done),
        "simulator_cpu_s_per_1k": round(figures["simulator_cpu_s"] / done * 1000, 3),
        "peak_rss_mb": figures["peak_rss_mb"],
        "by_platform": summary.by_platform,
    }


def _per_1k(seconds: float | None, deliveries: int) -> float | None:
    return None if seconds is None else round(seconds / deliveries * 1000, 3)


# -- the report -----------------------------------------------------------------------------
def failures(run: dict[str, Any], lateness_target_s: float) -> list[str]:
    """Why a run fails the target (empty: it met it)."""
    out = [
        f"{key} {run[key]}"
        for key in (
            "lost",
            "duplicates",
            "misrecorded",
            "unfinished",
            "limit_violations",
            "cap_violations",
        )
        if run[key]
    ]
    if not run["complete"]:
        out.append("not every post reached the platforms")
    if run["lateness_p99_s"] >= lateness_target_s:
        out.append(f"lateness p99 {run['lateness_p99_s']:.1f} s >= {lateness_target_s:g} s")
    return out


def print_run(run: dict[str, Any]) -> None:
    db = (
        ""
        if run["db_cpu_s_per_1k"] is None
        else f", its db sessions {run['db_cpu_s_per_1k']:.2f} (db server "
        f"{run['db_server_cpu_s_per_1k']:.2f})"
    )
    most = run["most_in_flight"]
    caps = ", ".join(f"{p} {most.get(f'{p}:app', 0)}/{most.get(f'{p}:channel', 0)}" for p in CAPS)
    print(
        f"  {run['store']:<8} {run['published']}/{run['deliveries']} published; per minute "
        f"{' '.join(str(n) for n in run['per_minute'])} "
        f"({' '.join(f'{r:.1f}' for r in run['per_s_by_minute'])}/s); "
        f"lateness p50 {run['lateness_p50_s']:.2f} p99 {run['lateness_p99_s']:.2f} "
        f"max {run['lateness_max_s']:.2f} s",
        flush=True,
    )
    print(
        f"  {run['store']:<8} cpu s per 1k: engine {run['engine_cpu_s_per_1k']:.2f}{db}, "
        f"simulator {run['simulator_cpu_s_per_1k']:.2f}; engine rss {run['peak_rss_mb']} MB; "
        f"lost {run['lost']} dup {run['duplicates']} viol {run['limit_violations']} "
        f"cap viol {run['cap_violations']}; most in flight per app/channel: {caps}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts-per-minute", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--latency-median-ms", type=float, default=300.0)
    parser.add_argument("--latency-p99-ms", type=float, default=2500.0)
    parser.add_argument(
        "--due", choices=["minute", "even"], default="minute", help="per-minute lumps or even"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lateness-p99-target-s", type=float, default=120.0)
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL server")
    args = parser.parse_args()
    options = Options(
        per_minute=args.posts_per_minute,
        minutes=args.minutes,
        latency=LatencyModel(
            median_s=args.latency_median_ms / 1000, p99_s=args.latency_p99_ms / 1000
        ),
        spread=args.due,
        seed=args.seed,
        pg_url=args.database_url,
        lateness_target_s=args.lateness_p99_target_s,
        timeout_s=args.minutes * 60 + 600,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    print(
        f"sustained: {args.posts_per_minute} posts a minute for {args.minutes:g} min, due "
        f"{args.due}, latency median {args.latency_median_ms:g} ms p99 "
        f"{args.latency_p99_ms:g} ms; caps {json.dumps(CAPS)}",
        flush=True,
    )
    failed = False
    for kind in kinds:
        run = asyncio.run(run_once(kind, options))
        print_run(run)
        why = failures(run, options.lateness_target_s)
        print(f"  {kind:<8} {'MISSED: ' + '; '.join(why) if why else 'target met'}", flush=True)
        failed |= bool(why)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        due = "" if args.due == "minute" else f"-{args.due}"
        out = RESULTS / f"sustained-{kind}{due}-{stamp}.json"
        result = {
            "run": run,
            "args": vars(args),
            "caps": CAPS,
            "limits": LIMITS,
            "python": sys.version.split()[0],
        }
        out.write_text(json.dumps(result, indent=2))
        print(f"  written to {out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
