"""What a chaos run is made of: limits tight enough to bind, faults on every platform, engines
tuned so that a run takes minutes, and the channels and posts they publish."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from herald.config import Settings
from herald.demo.fidelity import (
    DUPLICATE_CHECKS,
    LISTING_LAG,
    LISTING_SETTLE_S,
    VIDEO_BYTES,
    every_call,
    per_platform,
)
from herald.demo.simulator_process import SimulatorProcess
from herald.demo.workload import MediaUrls, Workload, expected_targets, plan_posts
from herald.domain import Channel, MediaKind, Platform, new_id, utcnow
from herald.service.credentials import SecretsFile
from herald.simulator import CallFaults, FaultConfig, LatencyModel, SimulatorConfig

__all__ = [
    "CAPS",
    "DISTRIBUTED",
    "ENGINE",
    "FAULTS",
    "TIGHT",
    "ChaosOptions",
    "engine_env",
    "merged",
    "plan",
    "simulator_channels",
    "simulator_config",
    "tight_workload",
]

#: Limits on both sides (Herald's settings, and the simulator's through from_settings): low
#: enough that every platform's quota binds within a run.
TIGHT: dict[str, dict[str, Any]] = {
    "facebook": {"app_daily_active_users": 1},  # 200 calls an hour for the app
    "instagram": {"publishes_per_24h": 15},
    "linkedin": {"member_posts_per_day": 20},
    "youtube": {"quota_model": "bucket", "insert_calls_per_day": 6},
}
#: The engines' own settings: short timeouts and backoffs so that a run takes minutes, and
#: quick heartbeats so that a killed engine's claims come back within seconds.
ENGINE: dict[str, dict[str, Any]] = {
    "engine": {
        "check_delay_s": 0.5,
        "listing_settle_s": LISTING_SETTLE_S,
        "backoff_base_s": 0.2,
        "backoff_cap_s": 2.0,
        "throttle_pause_s": 2.0,
        "max_retries": 12,
        "lease_s": 15.0,
        "hold_s": 5.0,
        "shutdown_grace_s": 2.0,
        "heartbeat_s": 1.0,
        "dead_after_s": 3.0,
        "idle_recheck_s": 2.0,
        "sqlite_synchronous": "NORMAL",
    },
    **{p.value: {"timeout_s": 2.0, "connect_timeout_s": 1.0} for p in Platform},
}
#: Concurrency caps wider than one process, small enough to bind: with several engines or
#: workers (8 Facebook requests each at most, 4 LinkedIn...) only these keep the totals down.
CAPS: dict[str, dict[str, Any]] = {
    "facebook": {"channel_concurrency": 2, "app_concurrency": 6},
    "instagram": {"channel_concurrency": 1},
    "linkedin": {"cluster_concurrency": 3},
    "youtube": {"cluster_concurrency": 1},
}
#: The distributed mode's own settings: a claim waiting in the broker is leased a few seconds
#: only, so that the messages a broker restart loses are claimed and sent again within the run.
DISTRIBUTED: dict[str, dict[str, Any]] = {
    "broker": {"handoff_s": 5.0, "retry_s": 0.5, "depth_recheck_s": 0.5},
}
#: Every platform errs, drops answers after committing, and hangs past Herald's timeout.
#: Look-ups, container polls, upload set-ups and token refreshes fail too, less often, and a
#: quarter of YouTube's upload PUTs are cut part-way (a run uploads a few videos only).
FAULTS = FaultConfig(
    error_rate=0.05,
    drop_rate=0.05,
    timeout_rate=0.10,
    cut_rate=0.25,
    hang_s=4.0,
    timeout_commit_share=0.5,
    calls=every_call(
        CallFaults(error_rate=0.03, drop_rate=0.02, timeout_rate=0.02, throttle_rate=0.01)
    ),
)
_DELIVERIES_PER_POST = 1.5  # what plan_posts' mix of one to three targets comes to
_QUOTA_DEMAND = 1.5  # deliveries planned per channel, as a multiple of its daily quota


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    deliveries: int = 2000
    store: str = "postgres"  # or "sqlite"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    redis_url: str = "redis://127.0.0.1:6379/0"  # the engines' shared limits (PostgreSQL)
    engines: int = 2  # engine processes at once (one on SQLite: it owns its file)
    broker: str = "none"  # or redis, rabbitmq: a dispatcher and workers instead of engines
    workers: int = 3  # worker processes at once, with a broker
    seed: int = 1
    spread_s: float = 60.0  # the posts fall due over this long
    kill_every_s: float = 2.5  # a random engine is SIGKILLed (and started again) this often
    terminate_every_s: float = 7.0  # every engine's database sessions cut (PostgreSQL)
    outage_s: float = 60.0  # one platform refuses every connection this long
    outage_platform: Platform = Platform.LINKEDIN
    settle_timeout_s: float = 900.0
    as_json: bool = False

    def __post_init__(self) -> None:
        if self.store not in ("postgres", "sqlite"):
            raise ValueError(f"no chaos run on a {self.store!r} store: postgres or sqlite")
        if self.deliveries < 1 or self.engines < 1 or self.workers < 1:
            raise ValueError("a chaos run needs at least one delivery, engine and worker")
        if self.broker not in ("none", "redis", "rabbitmq"):
            raise ValueError(f"no chaos run through a {self.broker!r} broker: redis or rabbitmq")
        if self.distributed and self.store != "postgres":
            raise ValueError("the distributed mode runs on PostgreSQL: --store postgres")

    @property
    def distributed(self) -> bool:
        return self.broker != "none"

    @property
    def engine_count(self) -> int:
        """Engine processes at once: ``herald run`` engines, or a dispatcher and workers."""
        if self.distributed:
            return 1 + self.workers
        return self.engines if self.store == "postgres" else 1


def merged(*layers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            out.setdefault(section, {}).update(values)
    return out


def simulator_config(options: ChaosOptions) -> SimulatorConfig:
    return SimulatorConfig.from_settings(
        Settings.model_validate(merged(TIGHT, ENGINE)),
        latency=LatencyModel(median_s=0.05, p99_s=0.4),
        faults=per_platform(FAULTS),
        seed=options.seed,
        listing_lag=LISTING_LAG,
        **DUPLICATE_CHECKS,
    )


def engine_env(sections: dict[str, dict[str, Any]], database: dict[str, str]) -> dict[str, str]:
    """The environment of a ``herald run`` process: every setting through its env twin."""
    env = {**os.environ, "HERALD_LOG_LEVEL": "ERROR", **database}
    for section, values in sections.items():
        for key, value in values.items():
            env[f"HERALD_{section.upper()}__{key.upper()}"] = str(value)
    return env


def _channel_counts(deliveries: int) -> dict[Platform, int]:
    """Enough channels that each is planned about 1.5 times its daily quota: every quota
    binds, and most deliveries still go out within the run."""
    posts = math.ceil(deliveries / _DELIVERIES_PER_POST)
    load = expected_targets(posts)
    quota = {
        Platform.FACEBOOK: 100.0,  # the app's 200 calls an hour bind, not the Page's
        Platform.INSTAGRAM: float(TIGHT["instagram"]["publishes_per_24h"]),
        Platform.LINKEDIN: float(TIGHT["linkedin"]["member_posts_per_day"]),
    }
    counts = {p: max(1, math.ceil(load.get(p, 0) / (q * _QUOTA_DEMAND))) for p, q in quota.items()}
    return {**counts, Platform.YOUTUBE: 1}


async def simulator_channels(
    sim: SimulatorProcess, counts: dict[Platform, int], secrets_file: SecretsFile
) -> list[Channel]:
    """``counts`` accounts per platform on the simulator, as channels whose secrets are in
    ``secrets_file``."""
    names = [(p, f"{p.value} {n}") for p, count in counts.items() for n in range(count)]
    accounts = [await sim.client.add_account(platform, name) for platform, name in names]
    channels = [
        Channel(new_id("ch"), a.platform, a.external_id, a.name, "UTC", "") for a in accounts
    ]
    secrets_file.put_many({c.id: a.credentials for c, a in zip(channels, accounts, strict=True)})
    return [replace(c, credentials_ref=secrets_file.ref(c.id)) for c in channels]


async def plan(
    options: ChaosOptions, sim: SimulatorProcess, work: Path, *, lead_s: float
) -> tuple[list[Channel], Workload]:
    """The channels (accounts on the simulator, secrets in ``work``) and the posts, falling due
    from ``lead_s`` from now over ``options.spread_s``."""
    secrets_file = SecretsFile(work / "secrets.json")
    channels = await simulator_channels(sim, _channel_counts(options.deliveries), secrets_file)
    workload = await tight_workload(
        sim,
        channels,
        math.ceil(options.deliveries / _DELIVERIES_PER_POST),
        start_at=utcnow() + timedelta(seconds=lead_s),
        spread_s=options.spread_s,
        seed=options.seed,
    )
    return channels, workload


async def tight_workload(
    sim: SimulatorProcess,
    channels: list[Channel],
    posts: int,
    *,
    start_at: datetime,
    spread_s: float,
    seed: int,
) -> Workload:
    """``posts`` posts on ``channels`` due from ``start_at`` over ``spread_s``, their media
    served by the simulator, YouTube's uploads planned at twice its TIGHT quota."""
    media = MediaUrls(
        await sim.client.media_url(MediaKind.IMAGE, "chaos.jpg", size=4096),
        await sim.client.media_url(MediaKind.VIDEO, "chaos.mp4", size=VIDEO_BYTES),
    )
    return plan_posts(
        channels,
        posts,
        start_at=start_at,
        spread_s=spread_s,
        media_urls=media,
        youtube_limit=2 * TIGHT["youtube"]["insert_calls_per_day"],
        seed=seed,
    )
