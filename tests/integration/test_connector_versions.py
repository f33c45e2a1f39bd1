"""Herald's connectors read which API version answered them, against the simulator, and the
version watch warns of it: Graph serving a retired version's call from the oldest live one
(``facebook-api-version``), LinkedIn refusing a sunset version (426)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from herald.constants import PLATFORM_VERSION_RETIRING
from herald.domain import Platform, Webhook, new_id
from herald.engine.metrics import Metrics
from herald.engine.versions import VersionWatch
from herald.errors import RateLimited
from herald.platforms.registry import build_connectors
from herald.simulator import SimClock, Simulator
from herald.stores.memory import MemoryStore
from herald.types import Connector, VersionObserver
from tests.integration.connector_rig import Rig, new_rig, quiet_config, settings_for

FB, LI = Platform.FACEBOOK, Platform.LINKEDIN
TODAY = datetime(2026, 12, 7, 12, tzinfo=UTC)  # v20.0 retired (2026-09-24), 202510 sunset


class Told:
    """A version observer that keeps what it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[Platform, str, str | None]] = []

    def served(self, platform: Platform, asked: str, served: str | None) -> None:
        self.calls.append((platform, asked, served))


def rig_with(
    sim: Simulator,
    platform: Platform,
    made: list[Connector],
    observer: VersionObserver,
    **overrides: str,
) -> Rig:
    """A rig whose connector tells ``observer`` which version answered it."""
    rig = new_rig(sim, platform, made, **overrides)
    settings = settings_for(sim, platform, **overrides)
    rig.connector = build_connectors(settings, versions=observer)[platform]
    made.append(rig.connector)
    return rig


async def watched(rig: Rig, watch: VersionWatch) -> list[dict[str, object]]:
    """The warnings the watch gives today to a workspace on the rig's platform."""
    store = MemoryStore()
    await store.add_channels([rig.channel])
    events = (PLATFORM_VERSION_RETIRING,)
    hook = Webhook(new_id("wh"), rig.channel.workspace_id, "https://h.example/", events)
    await store.add_webhook(hook, b"s")
    await watch.check(store, TODAY)
    return [e.event.payload for e in await store.list_webhook_events(hook.id)]


async def test_a_graph_answer_from_another_version_is_read_and_warned_of():
    made: list[Connector] = []
    async with Simulator(quiet_config(), clock=SimClock(TODAY.timestamp())) as sim:
        try:
            told = Told()
            origin = sim.urls.facebook.rsplit("/", 1)[0]
            rig = rig_with(sim, FB, made, told, base_url=f"{origin}/v23.0")
            await rig.connector.publish(rig.request(rig.valid()))
            assert told.calls == [(FB, "v23.0", "v23.0")]  # live: served as asked

            watch = VersionWatch(settings_for(sim, FB, base_url=f"{origin}/v20.0"), Metrics())
            rig = rig_with(sim, FB, made, watch, base_url=f"{origin}/v20.0")
            published = await rig.connector.publish(rig.request(rig.valid()))
            assert published.external_id in rig.held()  # upgraded, not refused
            [event] = await watched(rig, watch)
            assert (event["version"], event["reason"], event["served_by"]) == (
                "v20.0",
                "upgraded",
                "v21.0",
            )
        finally:
            for connector in made:
                await connector.aclose()


async def test_a_sunset_linkedin_version_is_read_and_warned_of():
    made: list[Connector] = []
    async with Simulator(quiet_config(), clock=SimClock(TODAY.timestamp())) as sim:
        try:
            told = Told()
            rig = rig_with(sim, LI, made, told, api_version="202510")
            with pytest.raises(RateLimited, match=r"update linkedin\.api_version") as refused:
                await rig.connector.publish(rig.request(rig.valid()))
            # The app waits for a new version; the post is not failed for the platform's word.
            assert (refused.value.scope, refused.value.retry_after) == ("app", 600.0)
            assert told.calls == [(LI, "202510", None)]
            assert rig.held() == []
        finally:
            for connector in made:
                await connector.aclose()
