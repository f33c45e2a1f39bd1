"""A connector under test pointed at the platform simulator, with an account of its own there.

Shared by the connector contract (test_connector_contract.py) and the connectors' own tests
against the simulator (test_connectors.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from herald.config import Settings
from herald.domain import Channel, Content, Media, MediaKind, Platform, utcnow
from herald.platforms.registry import build_connectors
from herald.simulator import NO_LISTING_LAG, LatencyModel, Simulator, SimulatorConfig
from herald.types import Connector, PublishRequest

PLATFORMS = list(Platform)
PAUSE_S = 42.0


def quiet_config(**overrides: Any) -> SimulatorConfig:
    """A simulator that answers at once, with a fixed seed; ``overrides`` as for
    :meth:`SimulatorConfig.from_settings` (per-platform limits, say)."""
    overrides.setdefault("listing_lag", NO_LISTING_LAG)  # listings show new posts at once
    return SimulatorConfig.from_settings(
        Settings(), latency=LatencyModel(median_s=0.0, p99_s=0.0), seed=7, **overrides
    )


@dataclass
class Rig:
    """One simulator, one account on it, and the connector under test pointed at it."""

    sim: Simulator
    platform: Platform
    connector: Connector
    channel: Channel
    credentials: dict[str, str]

    def request(self, content: Content, attempt: int = 1) -> PublishRequest:
        return PublishRequest(
            delivery_id=f"dlv_{uuid.uuid4().hex[:8]}",
            channel=self.channel,
            credentials=self.credentials,
            content=content,
            attempt=attempt,
            since=utcnow() - timedelta(seconds=1),
        )

    def posts(self) -> list[Any]:
        return self.sim.audit.posts(self.platform, self.channel.external_id)

    def requests(self) -> int:
        return len(self.sim.audit.requests(self.platform))

    def valid(self) -> Content:
        return good_content(self.sim, self.platform)

    def refused(self) -> Content:
        return bad_content(self.sim, self.platform)

    def held(self) -> list[str]:
        return [post.post_id for post in self.posts()]


def good_content(sim: Simulator, platform: Platform) -> Content:
    """Content each platform accepts, unique per call (Facebook refuses exact repeats)."""
    tag = uuid.uuid4().hex[:10]
    text = f"Herald contract {tag}: launch (v2) #herald @team_x *now*"
    image = Media(sim.media_url("image", f"{tag}.jpg"), MediaKind.IMAGE)
    video = Media(sim.media_url("video", f"{tag}.mp4", size=300_000), MediaKind.VIDEO)
    if platform is Platform.INSTAGRAM:
        return Content(text=text, media=(image,))
    if platform is Platform.YOUTUBE:
        return Content(text=f"{text}\nSecond line of the description", media=(video,))
    return Content(text=text)


def bad_content(sim: Simulator, platform: Platform) -> Content:
    """Content each platform refuses (herald.platforms.rules), though it has text."""
    image = Media(sim.media_url("image", "x.jpg"), MediaKind.IMAGE)
    video = Media(sim.media_url("video", "x.mp4"), MediaKind.VIDEO)
    return {
        Platform.FACEBOOK: Content(text="a video", media=(video,)),
        Platform.INSTAGRAM: Content(text="no media at all"),
        Platform.LINKEDIN: Content(text="two images", media=(image, image)),
        Platform.YOUTUBE: Content(text="no video", media=(image,)),
    }[platform]


def settings_for(sim: Simulator, platform: Platform, **overrides: Any) -> Settings:
    """Settings pointing at ``sim``; ``overrides`` go to ``platform``'s own section."""
    sections: dict[str, Any] = {k: dict(v) for k, v in sim.settings_overrides().items()}
    sections[platform.value] = {**sections[platform.value], **overrides}
    return Settings.model_validate({"engine": {"throttle_pause_s": PAUSE_S}, **sections})


def new_rig(sim: Simulator, platform: Platform, made: list[Connector], **overrides: Any) -> Rig:
    """A new account on ``sim`` and a connector to it, built as the engine builds its
    connectors; the connector is appended to ``made`` for the caller to close."""
    account = sim.add_account(platform)
    connector = build_connectors(settings_for(sim, platform, **overrides))[platform]
    made.append(connector)
    channel = Channel(
        id=f"ch_{platform.value}",
        platform=platform,
        external_id=account.external_id,
        name=account.name,
        timezone="UTC",
        credentials_ref="sim",
    )
    return Rig(sim, platform, connector, channel, dict(account.credentials))


@asynccontextmanager
async def opened_rig(
    platform: Platform, config: SimulatorConfig | None = None
) -> AsyncIterator[Rig]:
    """A rig on a simulator of its own (``config``, default :func:`quiet_config`), stopped on
    exit with the connector closed."""
    made: list[Connector] = []
    async with Simulator(config or quiet_config()) as sim:
        try:
            yield new_rig(sim, platform, made)
        finally:
            for connector in made:
                await connector.aclose()
