"""A Herald engine on SQLite wired to an in-process simulator, for end-to-end tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from herald.bootstrap import running_engine
from herald.config import Settings
from herald.domain import (
    Channel,
    Content,
    ContentOverride,
    Delivery,
    Media,
    MediaKind,
    NewPost,
    Platform,
    Post,
    new_id,
    utcnow,
)
from herald.engine import Engine
from herald.service.credentials import SecretsFile
from herald.simulator import ListingLag, Simulator
from herald.stores.sqlite import SQLiteStore

#: Listings that show a new post within 2 s: what FAST_ENGINE's look-ups wait for.
FAST_LISTINGS = ListingLag(median_s=0.2, p99_s=1.0, max_s=2.0)

FAST_ENGINE = {
    "check_delay_s": 0.2,
    "listing_settle_s": 3.0,  # FAST_LISTINGS' longest lag, and the time a request takes
    "backoff_base_s": 0.05,
    "backoff_cap_s": 0.5,
    "throttle_pause_s": 0.5,
    "idle_recheck_s": 0.5,
    "shutdown_grace_s": 2.0,
    "hold_s": 5.0,
    "max_retries": 12,
    "sqlite_synchronous": "NORMAL",
}


def pipeline_settings(sim: Simulator, **sections: dict[str, Any]) -> Settings:
    raw: dict[str, Any] = {"engine": dict(FAST_ENGINE)}
    for name, values in sim.settings_overrides().items():
        raw[name] = dict(values)
    raw["instagram"].update({"poll_initial_s": 0.05, "poll_max_s": 0.2})
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return Settings(**raw)


@dataclass
class Pipeline:
    sim: Simulator
    settings: Settings
    store: SQLiteStore
    secrets: SecretsFile
    _posts: int = field(default=0)

    async def channel(
        self, platform: Platform, timezone: str = "Europe/Paris", *, region: str | None = None
    ) -> Channel:
        account = self.sim.add_account(platform)
        channel_id = new_id("ch")
        channel = Channel(
            id=channel_id,
            platform=platform,
            external_id=account.external_id,
            name=account.name or platform.value,
            timezone=timezone,
            credentials_ref=self.secrets.put(channel_id, account.credentials),
            region=region,
        )
        await self.store.add_channels([channel])
        return channel

    def content(self, channels: Sequence[Channel], text: str) -> Post:
        platforms = {c.platform for c in channels}
        media: tuple[Media, ...] = ()
        if Platform.INSTAGRAM in platforms:
            media = (Media(self.sim.media_url("image", f"{text}.jpg"), MediaKind.IMAGE),)
        overrides = {}
        if Platform.YOUTUBE in platforms:
            video = Media(self.sim.media_url("video", f"{text}.mp4", size=4096), MediaKind.VIDEO)
            overrides[Platform.YOUTUBE] = ContentOverride(media=(video,), title=f"Video {text}")
        return Post(new_id("post"), Content(text=text, media=media), overrides)

    async def schedule(
        self, channels: Sequence[Channel], count: int = 1, *, due_at: datetime | None = None
    ) -> list[str]:
        posts = []
        for _ in range(count):
            self._posts += 1
            text = f"Post number {self._posts} from the pipeline test suite"
            targets = tuple((new_id("dlv"), c.id) for c in channels)
            post = self.content(channels, text)
            posts.append(NewPost.at(post, targets, due_at or utcnow() - timedelta(seconds=1)))
        created = await self.store.add_posts(posts)
        return [d.id for d in created]

    async def run(self, *, within_s: float = 60.0, burst_horizon_s: float = 30.0) -> None:
        async with running_engine(self.settings, self.store) as engine:
            await asyncio.wait_for(
                engine.run(burst=True, burst_horizon_s=burst_horizon_s), within_s
            )

    async def start(self) -> tuple[Engine, asyncio.Task[None], Any]:
        context = running_engine(self.settings, self.store)
        engine = await context.__aenter__()
        return engine, asyncio.create_task(engine.run()), context

    async def deliveries(self) -> dict[str, Delivery]:
        return {d.id: d for d in await self.store.list_deliveries(limit=100_000)}


async def open_pipeline(sim: Simulator, tmp_path: Path, **sections: dict[str, Any]) -> Pipeline:
    settings = pipeline_settings(sim, **sections)
    store = SQLiteStore(tmp_path / "herald.db", synchronous="NORMAL")
    await store.open()
    return Pipeline(sim, settings, store, SecretsFile(tmp_path / "secrets.json"))
