"""``herald demo``: the simulator, the embedded engine and a day's worth of posts, end to end.

1. start the platform simulator in its own process;
2. create channels on the four platforms in a dozen time zones (their tokens in a secrets
   file), and schedule the posts as local wall times in those zones;
3. run the engine on a fresh SQLite database with a live view per platform; with ``--faults``
   the platforms fail, time out, drop connections after committing, throttle, cut video
   uploads part-way through and revoke a token, and the demo plays the user who
   re-authorises;
4. judge the run from both ends (:mod:`herald.demo.judge`) and print the summary.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from herald.bootstrap import running_engine
from herald.config import Settings
from herald.demo.fidelity import (
    DUPLICATE_CHECKS,
    LISTING_LAG,
    LISTING_SETTLE_S,
    VIDEO_BYTES,
    every_call,
    per_platform,
    speak_retired_graph,
)
from herald.demo.judge import Summary, all_deliveries, judge
from herald.demo.simulator_process import SimulatorProcess
from herald.demo.workload import (
    ZONES,
    MediaUrls,
    Workload,
    plan_channel_counts,
    plan_posts,
    youtube_cap,
)
from herald.domain import Channel, ChannelStatus, MediaKind, Platform, new_id, utcnow
from herald.engine import Engine
from herald.engine.versions import VersionNotice
from herald.logs import configure_logging
from herald.service.credentials import SecretsFile
from herald.simulator import CallFaults, FaultConfig, LatencyModel, SimulatorClient, SimulatorConfig
from herald.stores.sqlite import SQLiteStore

__all__ = ["DemoOptions", "run_demo"]

_TICK_S = 0.25  # refresh of the live view and of the demo user's checks
_SETTLED_HORIZON_S = 120.0  # work due later than this waits for a quota window
_VIDEO_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class DemoOptions:
    posts: int = 500
    faults: bool = False
    as_json: bool = False
    seed: int = 7
    db: Path | None = None


def demo_settings(faults: bool) -> dict[str, Any]:
    """Engine tuning for a demo that finishes in seconds rather than hours."""
    engine = {
        "check_delay_s": 0.5,
        "listing_settle_s": LISTING_SETTLE_S,
        "backoff_base_s": 0.2,
        "backoff_cap_s": 2.0,
        "throttle_pause_s": 1.0,
        "idle_recheck_s": 1.0,
        "max_retries": 10,
        "sqlite_synchronous": "NORMAL",
    }
    polling = {"poll_initial_s": 0.05, "poll_max_s": 0.5}
    timeouts = {"timeout_s": 2.0, "connect_timeout_s": 1.0} if faults else {}
    return {
        "engine": engine,
        "facebook": dict(timeouts),
        "instagram": {**timeouts, **polling},
        "linkedin": dict(timeouts),
        "youtube": dict(timeouts),
    }


def demo_faults() -> dict[Platform, FaultConfig]:
    fault = FaultConfig(
        error_rate=0.02,
        timeout_rate=0.005,
        drop_rate=0.01,
        throttle_rate=0.005,
        cut_rate=0.05,  # YouTube's upload PUTs
        hang_s=3.0,
        retry_after_s=1,
        calls=every_call(
            CallFaults(error_rate=0.02, timeout_rate=0.005, drop_rate=0.01, throttle_rate=0.005)
        ),
    )
    return per_platform(fault)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


async def _create_channels(
    client: SimulatorClient, counts: dict[Platform, int], secrets: SecretsFile
) -> list[Channel]:
    channels: list[Channel] = []
    entries: dict[str, dict[str, str]] = {}
    zone_index = 0
    for platform, count in counts.items():
        for n in range(count):
            account = await client.add_account(platform, name=f"{platform.value} {n + 1}")
            channel_id = new_id("ch")
            entries[channel_id] = account.credentials
            channels.append(
                Channel(
                    id=channel_id,
                    platform=platform,
                    external_id=account.external_id,
                    name=account.name or f"{platform.value} {n + 1}",
                    timezone=ZONES[zone_index % len(ZONES)],
                    credentials_ref=f"file:{secrets.path}#{channel_id}",
                )
            )
            zone_index += 1
    secrets.put_many(entries)
    return channels


def _fresh_database(db: Path) -> None:
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


@asynccontextmanager
async def _workdir(db: Path | None) -> AsyncIterator[Path]:
    if db is not None:
        _fresh_database(db)
        yield db.parent
        return
    with tempfile.TemporaryDirectory(prefix="herald-demo-") as tmp:
        yield Path(tmp)


def _progress(engine: Engine, totals: dict[Platform, int], started: float) -> Table:
    done: dict[tuple[str, str], float] = {}
    for metric in engine.metrics.registry.collect():
        if metric.name == "herald_deliveries":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    labels = sample.labels
                    done[(labels["platform"], labels["outcome"])] = sample.value
    table = Table(title=f"Herald demo: {time.monotonic() - started:5.1f} s")
    for column in ("platform", "planned", "published", "failed", "expired", "retries", "checks"):
        table.add_column(column, justify="right" if column != "platform" else "left")
    for platform, total in sorted(totals.items()):
        p = platform.value
        published = done.get((p, "published"), 0) + done.get((p, "reconciled"), 0)
        table.add_row(
            p,
            str(total),
            f"{published:.0f}",
            f"{done.get((p, 'failed'), 0):.0f}",
            f"{done.get((p, 'expired'), 0):.0f}",
            f"{done.get((p, 'retry'), 0) + done.get((p, 'rate_limited'), 0):.0f}",
            f"{done.get((p, 'unconfirmed'), 0):.0f}",
        )
    return table


@dataclass(frozen=True, slots=True)
class _Run:
    engine: Engine
    store: SQLiteStore
    client: SimulatorClient
    secrets: SecretsFile
    workload: Workload


async def _reauthorize(run: _Run) -> int:
    """Play the user who re-connects a channel the platform stopped accepting."""
    fixed = 0
    for channel in await run.store.list_channels():
        if channel.status is ChannelStatus.NEEDS_REAUTH:
            credentials = await run.client.reauthorize(channel.platform, channel.external_id)
            run.secrets.put(channel.id, credentials)
            await run.store.set_channel_status(channel.id, ChannelStatus.ACTIVE)
            fixed += 1
    if fixed:
        run.engine.notify()
    return fixed


async def _publish(run: _Run, live: Live | None) -> int:
    """Run the engine until every delivery is settled; return re-authorisations made."""
    started = time.monotonic()
    engine = run.engine
    task = asyncio.create_task(engine.run())
    reauthorized = 0
    totals = run.workload.count_by_platform()
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=_TICK_S)
            reauthorized += await _reauthorize(run)
            if live is not None:
                live.update(_progress(engine, totals, started))
            # Done when nothing is due soon: all settled, or deferred to a quota window.
            idle = await engine.is_idle(horizon_s=_SETTLED_HORIZON_S)
            if idle and not reauthorized_pending(await run.store.list_channels()):
                engine.request_stop()
        await task
    finally:
        if not task.done():
            engine.request_stop()
            await task
    return reauthorized


def reauthorized_pending(channels: list[Channel]) -> bool:
    return any(c.status is ChannelStatus.NEEDS_REAUTH for c in channels)


async def run_demo(options: DemoOptions) -> Summary:
    console = Console(stderr=options.as_json)
    configure_logging("ERROR")
    base = demo_settings(options.faults)
    plain = Settings(**base)
    sim_config = SimulatorConfig.from_settings(
        plain,
        latency=LatencyModel(median_s=0.002, p99_s=0.02),
        faults=demo_faults() if options.faults else None,
        seed=options.seed,
        youtube={"access_token_ttl_s": 5.0} if options.faults else {},
        listing_lag=LISTING_LAG,
        **(DUPLICATE_CHECKS if options.faults else {}),
    )
    async with SimulatorProcess(sim_config) as sim, _workdir(options.db) as workdir:
        client = sim.client
        overrides = await client.settings_overrides()
        if options.faults:
            graph = overrides["instagram"]["base_url"]
            overrides["instagram"]["base_url"] = speak_retired_graph(graph, utcnow().date())
        settings = Settings(**_merge(base, overrides))
        secrets = SecretsFile(workdir / "demo-secrets.json")
        counts = plan_channel_counts(options.posts, settings)
        channels = await _create_channels(client, counts, secrets)
        media = MediaUrls(
            await client.media_url(MediaKind.IMAGE, "demo.jpg", size=16_384),
            await client.media_url(
                MediaKind.VIDEO,
                "demo.mp4",
                size=VIDEO_BYTES if options.faults else _VIDEO_BYTES,
            ),
        )
        spread_s = min(10.0, options.posts / 1000)
        workload = plan_posts(
            channels,
            options.posts,
            start_at=utcnow() + timedelta(seconds=1.0),
            spread_s=spread_s,
            media_urls=media,
            youtube_limit=youtube_cap(settings),
            seed=options.seed,
        )
        db = options.db or workdir / "herald-demo.db"
        store = SQLiteStore(db, synchronous=settings.engine.sqlite_synchronous)
        await store.open()
        try:
            await store.add_channels(channels)
            for start in range(0, len(workload.posts), 1000):
                await store.add_posts(workload.posts[start : start + 1000])
            if options.faults:
                victim = next(c for c in channels if c.platform is Platform.FACEBOOK)
                await client.revoke(victim.platform, victim.external_id)
            console.print(
                f"Scheduled {options.posts} posts ({len(workload.deliveries)} deliveries) on "
                f"{len(channels)} channels in {len(ZONES)} time zones"
                + (", with platform faults" if options.faults else "")
            )
            began = time.monotonic()
            async with running_engine(settings, store) as engine:
                with Live(console=console, refresh_per_second=4, transient=options.as_json) as live:
                    run = _Run(engine, store, client, secrets, workload)
                    reauthorized = await _publish(run, live)
            elapsed = time.monotonic() - began
            audit = await client.audit.summary()
            summary = judge(
                options.posts,
                workload.deliveries,
                await all_deliveries(store),
                await client.audit.posts(),
                await client.audit.violations(),
                elapsed_s=elapsed,
                settled_at=utcnow() + timedelta(seconds=_SETTLED_HORIZON_S),
                refused=audit.get("refused", 0),
                refused_repeats=audit.get("duplicates_refused", 0),
            )
            summary.reauthorized = reauthorized
            summary.injected_faults = audit.get("injected", {})
            summary.version_warnings = [_warning(n) for n in engine.versions.given]
        finally:
            await store.close()
    if not options.as_json:
        print_summary(console, summary)
    return summary


def _warning(notice: VersionNotice) -> str:
    """One line of the summary: which version, and what Herald knows of its end."""
    said = {
        "retiring": f"retires on {notice.retires_on} ({notice.days_left} days left)",
        "retired": f"retired on {notice.retires_on}",
        "upgraded": f"answered by {notice.served_by}",
        "refused": "refused by the platform",
    }[notice.reason]
    return f"{notice.platform.value} {notice.version}: {said}"


def print_summary(console: Console, summary: Summary) -> None:
    table = Table(title="Herald demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("posts", summary.posts),
        ("deliveries", summary.deliveries),
        ("published", summary.published),
        ("  of which found by a check (reconciled)", summary.reconciled),
        ("failed", summary.failed),
        ("expired", summary.expired),
        ("unconfirmed (user decides)", summary.unconfirmed),
        ("deferred to a quota window", summary.deferred),
        ("lost (judged by the platforms)", summary.lost),
        ("duplicates (judged by the platforms)", summary.duplicates),
        ("rate-limit violations", summary.limit_violations),
        ("requests refused with a throttle", summary.refused),
        ("channels re-authorised", summary.reauthorized),
        ("wall time (1 s lead before the first due post)", f"{summary.elapsed_s:.2f} s"),
        ("first due to last outcome", f"{summary.drain_s:.2f} s"),
        ("throughput", f"{summary.deliveries_per_s:.0f} deliveries/s"),
        ("lateness p50 / p99", f"{summary.lateness_p50_s:.3f} s / {summary.lateness_p99_s:.3f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    if any(summary.injected_faults.values()):
        injected = ", ".join(f"{k}: {v}" for k, v in sorted(summary.injected_faults.items()))
        console.print(f"faults injected by the platforms: {injected}")
    for warning in summary.version_warnings:
        console.print(f"platform.version_retiring: {warning}")
    verdict = "[green]nothing lost, nothing twice[/]" if summary.ok else "[red]FAILED[/]"
    console.print(verdict)
