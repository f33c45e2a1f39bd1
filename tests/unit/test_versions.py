"""Herald warns ahead of the retirement of the platform API versions it speaks: a gauge, a
log line and a ``platform.version_retiring`` webhook event, at most once per version per day;
and at once when a platform answers from another version than the one asked for."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest

from herald.config import (
    EngineSettings,
    FacebookSettings,
    InstagramSettings,
    LinkedInSettings,
    Settings,
)
from herald.constants import PLATFORM_VERSION_RETIRING
from herald.domain import Platform, Webhook, new_id
from herald.engine.metrics import Metrics
from herald.engine.versions import VersionWatch
from herald.stores.memory import MemoryStore
from herald.testing import FakeConnector, FakePlatform, channel
from herald.versions import graph_version, retires_on, spoken_versions
from tests.suites.engine import drain, engine_for, utcnow
from tests.suites.engine import settings as engine_settings

FB, IG, LI = Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN
#: Facebook at v23.0 (its end of life: 2027-10-08); Instagram and LinkedIn far from theirs.
SPEAKS = {
    "facebook": FacebookSettings(base_url="https://graph.facebook.com/v23.0"),
    "instagram": InstagramSettings(base_url="https://graph.facebook.com/v25.0"),
    "linkedin": LinkedInSettings(api_version="202612"),
}
WITHIN = datetime(2027, 7, 20, 9, tzinfo=UTC)  # 80 days before v23.0 retires
OUTSIDE = datetime(2027, 7, 1, 9, tzinfo=UTC)  # 99 days before


class World:
    """A store with a workspace on Facebook whose webhook subscribes to the warning."""

    def __init__(self, **settings: object) -> None:
        self.store = MemoryStore()
        self.metrics = Metrics()
        self.watch = VersionWatch(Settings(**{**SPEAKS, **settings}), self.metrics)
        self.hook = Webhook(new_id("wh"), "default", "https://hooks.example/h", ())

    async def open(self) -> World:
        ch = channel(FB)
        self.hook = Webhook(
            new_id("wh"), ch.workspace_id, "https://hooks.example/h", (PLATFORM_VERSION_RETIRING,)
        )
        await self.store.add_channels([ch])
        await self.store.add_webhook(self.hook, b"s")
        return self

    def gauge(self, platform: Platform, version: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "herald_platform_version_retires_in_days",
            {"platform": platform.value, "version": version},
        )

    async def events(self) -> list[dict[str, object]]:
        return [e.event.payload for e in await self.store.list_webhook_events(self.hook.id)]


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == PLATFORM_VERSION_RETIRING]


async def test_a_version_retiring_within_the_horizon_is_warned_of_once_a_day(caplog):
    world = await World().open()
    assert await world.watch.check(world.store, WITHIN) == 1
    assert world.gauge(FB, "v23.0") == 80
    assert world.gauge(IG, "v25.0") == (date(2028, 7, 29) - WITHIN.date()).days
    [event] = await world.events()
    assert event == {
        "event": PLATFORM_VERSION_RETIRING,
        "platform": "facebook",
        "version": "v23.0",
        "retires_on": "2027-10-08",
        "days_left": 80,
        "reason": "retiring",
        "served_by": None,
        "occurred_at": WITHIN.isoformat(),
    }
    [line] = warnings(caplog)
    fields = ("platform", "version", "days_left", "reason")
    assert [getattr(line, f) for f in fields] == ["facebook", "v23.0", 80, "retiring"]
    # The same day: nothing more, however often it looks.
    for hours in (1, 5, 14):
        assert await world.watch.check(world.store, WITHIN + timedelta(hours=hours)) == 0
    assert len(await world.events()) == 1
    assert len(warnings(caplog)) == 1
    # The next day: once more, a day closer.
    assert await world.watch.check(world.store, WITHIN + timedelta(days=1)) == 1
    assert sorted(e["days_left"] for e in await world.events()) == [79, 80]
    assert world.gauge(FB, "v23.0") == 79


async def test_a_restarted_engine_does_not_warn_again_the_same_day():
    # `herald run --burst` from cron, a deploy, or the workers of a distributed fleet: each
    # engine process starts its own watch. The webhook must still hear of a version at most
    # once a day, not once per process started that day.
    world = await World().open()
    assert await world.watch.check(world.store, WITHIN) == 1
    for hours in (1, 2, 3):  # three more engines started the same day
        again = VersionWatch(Settings(**SPEAKS), Metrics())
        await again.check(world.store, WITHIN + timedelta(hours=hours))
    assert len(await world.events()) == 1


async def test_no_warning_outside_the_horizon(caplog):
    world = await World().open()
    assert await world.watch.check(world.store, OUTSIDE) == 0
    assert world.gauge(FB, "v23.0") == 99
    assert await world.events() == []
    assert warnings(caplog) == []


async def test_the_horizon_is_a_setting():
    world = await World(engine=EngineSettings(version_warning_days=100)).open()
    assert await world.watch.check(world.store, OUTSIDE) == 1


async def test_a_retired_version_is_warned_of_as_retired():
    world = await World(facebook=FacebookSettings(base_url="https://x.test/v20.0")).open()
    assert await world.watch.check(world.store, WITHIN) == 1
    [event] = await world.events()
    assert (event["reason"], event["retires_on"]) == ("retired", "2026-09-24")
    assert world.gauge(FB, "v20.0") == (date(2026, 9, 24) - WITHIN.date()).days


async def test_an_answer_from_another_version_is_warned_of_at_once(caplog):
    world = await World().open()
    world.watch.served(FB, "v23.0", "v23.0")  # answered as asked: nothing to say
    assert await world.watch.check(world.store, OUTSIDE) == 0
    world.watch.served(FB, "v23.0", "v24.0")  # Graph upgraded the call
    world.watch.served(FB, "v23.0", "v24.0")
    assert await world.watch.check(world.store, OUTSIDE) == 1
    [event] = await world.events()
    assert (event["reason"], event["served_by"], event["days_left"]) == ("upgraded", "v24.0", 99)
    assert len(warnings(caplog)) == 1
    world.watch.served(FB, "v23.0", "v24.0")  # again the same day: already told
    assert await world.watch.check(world.store, OUTSIDE + timedelta(hours=2)) == 0
    assert await world.watch.check(world.store, OUTSIDE + timedelta(days=1)) == 0  # not again
    world.watch.served(FB, "v23.0", "v24.0")
    assert await world.watch.check(world.store, OUTSIDE + timedelta(days=1)) == 1


async def test_a_refused_linkedin_version_reaches_linkedin_workspaces():
    world = await World().open()
    li = channel(LI, workspace_id=world.hook.workspace_id)
    await world.store.add_channels([li])
    world.watch.served(LI, "202612", None)  # LinkedIn answered 426
    assert await world.watch.check(world.store, OUTSIDE) == 1
    [event] = await world.events()
    assert (event["platform"], event["reason"], event["served_by"]) == ("linkedin", "refused", None)


def test_herald_s_calendar():
    assert graph_version("https://graph.facebook.com/v23.0") == "v23.0"
    assert graph_version("http://127.0.0.1:8801/v21.0/") == "v21.0"
    assert graph_version("https://graph.facebook.com") is None
    assert retires_on(FB, "v23.0") == retires_on(IG, "v23.0") == date(2027, 10, 8)
    assert retires_on(LI, "202603") == date(2027, 3, 16)  # dated by LinkedIn
    assert retires_on(LI, "202606") == date(2027, 6, 1)  # not yet: a year on at the earliest
    assert retires_on(Platform.YOUTUBE, "v3") is None
    assert spoken_versions(Settings()) == {FB: "v23.0", IG: "v23.0", LI: "202606"}


def test_the_defaults_are_current():
    """Chosen on 2026-12-07: live, and not retiring within the default horizon."""
    chosen = date(2026, 12, 7)
    horizon = EngineSettings().version_warning_days
    for platform, version in spoken_versions(Settings()).items():
        retires = retires_on(platform, version)
        assert retires is not None
        assert (retires - chosen).days > horizon, (platform, version)


@pytest.mark.virtual_time
async def test_the_engine_warns_when_it_runs():
    store = MemoryStore()
    fb = channel(FB)
    await store.add_channels([fb])
    hook = Webhook(
        new_id("wh"), fb.workspace_id, "https://h.example/", (PLATFORM_VERSION_RETIRING,)
    )
    await store.add_webhook(hook, b"s")
    days = (date(2027, 10, 8) - utcnow().date()).days  # v23.0, the default
    cfg = engine_settings(version_warning_days=days + 1)
    engine = engine_for(store, {FB: FakeConnector(FB, FakePlatform())}, cfg)
    told: list[None] = []
    engine.on_events(lambda: told.append(None))
    await drain(engine)
    [event] = await store.list_webhook_events(hook.id)
    assert (event.event.payload["version"], event.event.payload["days_left"]) == ("v23.0", days)
    assert told
    sample = engine.metrics.registry.get_sample_value(
        "herald_platform_version_retires_in_days", {"platform": "facebook", "version": "v23.0"}
    )
    assert sample == days


def test_the_default_versions_are_outside_their_warning_horizon_today():
    """Fails on the day a version Herald speaks by default comes within
    ``engine.version_warning_days`` of its retirement: bump the default then (config.py and
    docs/platforms.md, "API versions"), before every user's engine starts warning and the
    platform stops answering."""
    settings = Settings()
    today = datetime.now(UTC).date()
    for platform, version in spoken_versions(settings).items():
        retires = retires_on(platform, version)
        assert retires is not None, (platform, version)
        assert (retires - today).days > settings.engine.version_warning_days, (platform, version)


async def test_each_warning_given_is_counted_and_kept():
    world = await World().open()
    assert await world.watch.check(world.store, WITHIN) == 1
    assert await world.watch.check(world.store, WITHIN) == 0  # once a day
    counted = world.metrics.registry.get_sample_value(
        "herald_platform_version_warnings_total",
        {"platform": "facebook", "version": "v23.0", "reason": "retiring"},
    )
    assert counted == 1
    assert [(n.platform, n.version, n.reason) for n in world.watch.given] == [
        (FB, "v23.0", "retiring")
    ]
