"""Engine + simulator end to end: exactly once under faults, limits and signals obeyed."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from herald.demo.fidelity import DUPLICATE_CHECKS, every_call
from herald.domain import ChannelStatus, Platform, utcnow
from herald.simulator import (
    CallFaults,
    CallKind,
    FaultConfig,
    LatencyModel,
    Simulator,
    SimulatorConfig,
)
from herald.states import DeliveryState
from herald.testing import eventually
from tests.integration.pipeline import FAST_LISTINGS, open_pipeline

S = DeliveryState


def sim_config(**kw) -> SimulatorConfig:
    from herald.config import Settings

    base = {
        "latency": LatencyModel(median_s=0.002, p99_s=0.01),
        "seed": 3,
        "listing_lag": FAST_LISTINGS,
    }
    base.update(kw)
    overrides = base.pop("overrides", {})
    return SimulatorConfig.from_settings(Settings(), **base, **overrides)


@pytest.fixture
async def sim():
    async with Simulator(sim_config()) as simulator:
        yield simulator


@pytest.fixture
async def pipe(sim, tmp_path):
    pipeline = await open_pipeline(sim, tmp_path)
    yield pipeline
    await pipeline.store.close()


async def test_every_platform_publishes_once(pipe, sim):
    channels = [await pipe.channel(p) for p in Platform for _ in range(2)]
    for channel in channels:
        await pipe.schedule([channel], 5)
    await pipe.run()
    deliveries = await pipe.deliveries()
    assert {d.state for d in deliveries.values()} == {S.PUBLISHED}
    summary = sim.audit.summary()
    assert summary["posts"] == 40
    assert summary["duplicates"] == 0
    assert summary["limit_violations"] == 0
    held = {(p.platform, p.account, p.post_id) for p in sim.audit.posts()}
    for d in deliveries.values():
        channel = next(c for c in channels if c.id == d.channel_id)
        assert (channel.platform, channel.external_id, d.external_id) in held


async def test_exactly_once_under_faults(tmp_path):
    # Every kind of call fails or is throttled (look-ups, containers and their polls, uploads
    # and their status queries, token refreshes: YouTube's access tokens live 0.2 s here),
    # listings show new posts late (FAST_LISTINGS) and the duplicate checks miss some
    # repeats: a resend they refused counts as a duplicate here too.
    faults = FaultConfig(
        error_rate=0.1,
        drop_rate=0.1,
        timeout_rate=0.05,
        throttle_rate=0.05,
        hang_s=1.5,
        calls=every_call(
            CallFaults(error_rate=0.1, drop_rate=0.05, timeout_rate=0.02, throttle_rate=0.03)
        ),
    )
    config = sim_config(
        faults=dict.fromkeys(Platform, faults),
        seed=11,
        youtube={"access_token_ttl_s": 0.2},
        **DUPLICATE_CHECKS,
    )
    async with Simulator(config) as sim:
        timeouts = {"timeout_s": 1.0, "connect_timeout_s": 0.5}
        pipe = await open_pipeline(
            sim,
            tmp_path,
            facebook=timeouts,
            instagram=timeouts,
            linkedin=timeouts,
            youtube=timeouts,
        )
        try:
            channels = [await pipe.channel(p) for p in Platform for _ in range(3)]
            for i in range(120):
                await pipe.schedule([channels[i % len(channels)]])
            await pipe.run(within_s=90)
            deliveries = await pipe.deliveries()
        finally:
            await pipe.store.close()
        summary = sim.audit.summary()
        injected = summary["injected"]
        assert sum(injected["facebook"].values()) > 0
        assert {d.state for d in deliveries.values()} == {S.PUBLISHED}
        assert (summary["duplicates"], summary["duplicates_refused"]) == (0, 0)
        assert summary["limit_violations"] == 0
        assert summary["posts"] == 120
        assert any(kind.startswith("read:") for kind in injected["facebook"])
        # Not only on Facebook's look-ups: on each kind of call that creates no post.
        faulted = {
            platform: {key.split(":")[0] for key in kinds if ":" in key}
            for platform, kinds in injected.items()
        }
        assert {"container", "status"} <= faulted["instagram"]
        # YouTube's status queries and token refreshes come a few times a run only, so a
        # fault on them is not certain here: test_media_streaming and test_connectors fail
        # each of them on purpose.
        assert "upload" in faulted["youtube"]
        assert any(key.endswith(":throttle") for kinds in injected.values() for key in kinds)
        # Every post the platforms committed without answering was found by a look-up and
        # recorded, never sent again (YouTube recovers through its upload session instead).
        undelivered = Counter(p.platform for p in sim.audit.posts() if not p.delivered)
        reconciled = Counter(d.platform for d in deliveries.values() if d.reconciled)
        for platform in (Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN):
            assert reconciled[platform] == undelivered[platform]
        assert sum(reconciled.values()) > 0


async def test_a_failing_look_up_leaves_the_post_unconfirmed_never_absent(sim, tmp_path):
    # The answer to the publish is lost, then every look-up fails: Herald keeps checking and
    # sends nothing again; once look-ups answer, it finds the post.
    lost = FaultConfig(drop_rate=1.0, calls={CallKind.READ: CallFaults(error_rate=1.0)})
    sim.set_faults(Platform.FACEBOOK, lost)
    pipe = await open_pipeline(sim, tmp_path, engine={"max_checks": 50})
    try:
        page = await pipe.channel(Platform.FACEBOOK)
        (delivery_id,) = await pipe.schedule([page])
        engine, task, context = await pipe.start()
        try:

            async def checked_twice() -> bool:
                attempts = await pipe.store.list_attempts(delivery_id)
                return [a.outcome for a in attempts].count("check_failed") >= 2

            await eventually(checked_twice, within_s=30, every_s=0.1)
            assert len(sim.audit.posts()) == 1  # one post, its answer dropped; none sent again
            (delivery,) = (await pipe.deliveries()).values()
            assert delivery.state is S.UNCONFIRMED
            sim.set_faults(Platform.FACEBOOK, FaultConfig())

            async def published() -> bool:
                return (await pipe.deliveries())[delivery_id].state is S.PUBLISHED

            await eventually(published, within_s=30, every_s=0.1)
        finally:
            engine.request_stop()
            await task
            await context.__aexit__(None, None, None)
        (delivery,) = (await pipe.deliveries()).values()
        assert delivery.reconciled
        assert (len(sim.audit.posts()), sim.audit.duplicates()) == (1, 0)
    finally:
        await pipe.store.close()


async def test_an_instagram_account_over_its_call_limit_is_paused_not_hammered(tmp_path):
    # The simulator counts every Instagram call against the account's Business Use Case limit
    # (4800 x impressions in 24 h: small for a small account, and a figure Herald cannot
    # know, so a refusal, not a violation). Herald obeys the first 80002: the account pauses
    # until the regain time the usage header gives, and nothing is sent twice meanwhile.
    config = sim_config(overrides={"instagram": {"calls_per_24h": 6}})
    async with Simulator(config) as sim:
        pipe = await open_pipeline(sim, tmp_path)
        try:
            account = await pipe.channel(Platform.INSTAGRAM)
            await pipe.schedule([account], 4)
            await pipe.run(within_s=30, burst_horizon_s=5)
            deliveries = await pipe.deliveries()
        finally:
            await pipe.store.close()
        summary = sim.audit.summary()
        assert summary["limit_violations"] == 0
        refused = summary["refused_by_rule"].get("instagram:calls", 0)
        assert 1 <= refused <= 5  # at most what was in flight when the first refusal came
        assert (summary["duplicates"], summary["duplicates_refused"]) == (0, 0)
        waiting = [d for d in deliveries.values() if d.state is not S.PUBLISHED]
        assert waiting
        assert all(d.next_attempt_at is not None for d in waiting)


async def test_graph_page_throttle_pauses_that_page_only(sim, tmp_path):
    pipe = await open_pipeline(sim, tmp_path, engine={"throttle_pause_s": 1.0})
    try:
        throttled, other = (
            await pipe.channel(Platform.FACEBOOK),
            await pipe.channel(Platform.FACEBOOK),
        )
        sim.set_faults(
            Platform.FACEBOOK, FaultConfig(throttle_rate=1.0, graph_throttle_codes=(32,))
        )
        await pipe.schedule([throttled], 1)
        engine, task, context = await pipe.start()
        await eventually(
            lambda: sim.audit.injected(Platform.FACEBOOK).get("throttle", 0) >= 1, within_s=20
        )
        sim.set_faults(Platform.FACEBOOK, FaultConfig())
        await pipe.schedule([throttled], 2)
        await pipe.schedule([other], 2)
        engine.notify()
        await eventually(lambda: sim.audit.summary()["posts"] == 5, within_s=20)
        engine.request_stop()
        await task
        await context.__aexit__(None, None, None)
    finally:
        await pipe.store.close()
    log = sim.audit.requests(Platform.FACEBOOK, throttled.external_id)
    refused = next(r for r in log if r.status == 400)
    after = [r for r in log if r.at > refused.at]
    assert after, "the throttled page was never tried again"
    assert min(r.at for r in after) - refused.at >= 0.95
    other_log = sim.audit.requests(Platform.FACEBOOK, other.external_id)
    assert min(r.at for r in other_log) - refused.at < 0.9  # the other page went on at once
    assert sim.audit.summary()["limit_violations"] == 0


async def test_graph_app_throttle_pauses_every_page(sim, tmp_path):
    pipe = await open_pipeline(sim, tmp_path, engine={"throttle_pause_s": 1.0})
    try:
        pages = [await pipe.channel(Platform.FACEBOOK) for _ in range(3)]
        sim.set_faults(Platform.FACEBOOK, FaultConfig(throttle_rate=1.0, graph_throttle_codes=(4,)))
        await pipe.schedule([pages[0]], 1)
        engine, task, context = await pipe.start()
        await eventually(
            lambda: sim.audit.injected(Platform.FACEBOOK).get("throttle", 0) >= 1, within_s=20
        )
        sim.set_faults(Platform.FACEBOOK, FaultConfig())
        for page in pages:
            await pipe.schedule([page], 1)
        engine.notify()
        await eventually(lambda: sim.audit.summary()["posts"] == 4, within_s=20)
        engine.request_stop()
        await task
        await context.__aexit__(None, None, None)
    finally:
        await pipe.store.close()
    log = sim.audit.requests(Platform.FACEBOOK)
    refused = next(r for r in log if r.status == 400)
    after = [r for r in log if r.at > refused.at]
    assert min(r.at for r in after) - refused.at >= 0.95


async def test_linkedin_retry_after_is_obeyed(sim, tmp_path):
    pipe = await open_pipeline(sim, tmp_path, engine={"throttle_pause_s": 0.1})
    try:
        member = await pipe.channel(Platform.LINKEDIN)
        sim.set_faults(Platform.LINKEDIN, FaultConfig(throttle_rate=1.0, retry_after_s=2))
        await pipe.schedule([member], 1)
        engine, task, context = await pipe.start()
        await eventually(
            lambda: sim.audit.injected(Platform.LINKEDIN).get("throttle", 0) >= 1, within_s=20
        )
        sim.set_faults(Platform.LINKEDIN, FaultConfig())
        await eventually(lambda: sim.audit.summary()["posts"] == 1, within_s=20)
        engine.request_stop()
        await task
        await context.__aexit__(None, None, None)
    finally:
        await pipe.store.close()
    log = [r for r in sim.audit.requests(Platform.LINKEDIN) if r.method == "POST"]
    refused = next(r for r in log if r.status == 429)
    retried = next(r for r in log if r.at > refused.at)
    assert retried.at - refused.at >= 1.95  # Retry-After: 2, not throttle_pause_s


async def test_expired_posts_are_never_sent(pipe, sim):
    page = await pipe.channel(Platform.FACEBOOK)
    stale = await pipe.schedule([page], 3, due_at=utcnow() - timedelta(hours=25))
    fresh = await pipe.schedule([page], 2)
    await pipe.run()
    deliveries = await pipe.deliveries()
    assert {deliveries[i].state for i in stale} == {S.EXPIRED}
    assert {deliveries[i].state for i in fresh} == {S.PUBLISHED}
    assert sim.audit.summary()["posts"] == 2


async def test_concurrency_caps_hold_as_measured_by_the_platform(tmp_path):
    config = sim_config(latency=LatencyModel(median_s=0.02, p99_s=0.05))
    async with Simulator(config) as sim:
        pipe = await open_pipeline(
            sim, tmp_path, facebook={"concurrency": 3}, linkedin={"concurrency": 2}
        )
        try:
            pages = [await pipe.channel(Platform.FACEBOOK) for _ in range(4)]
            members = [await pipe.channel(Platform.LINKEDIN) for _ in range(4)]
            for channel in pages + members:
                await pipe.schedule([channel], 10)
            await pipe.run()
        finally:
            await pipe.store.close()
        peak = sim.audit.summary()["max_concurrency"]
        assert peak["facebook"] == 3  # used to the cap, never beyond
        assert peak["linkedin"] == 2


async def test_instagram_daily_quota_defers_without_violation(tmp_path):
    config = sim_config(overrides={"instagram": {"publishes_per_24h": 3}})
    async with Simulator(config) as sim:
        pipe = await open_pipeline(sim, tmp_path, instagram={"publishes_per_24h": 3})
        try:
            account = await pipe.channel(Platform.INSTAGRAM)
            ids = await pipe.schedule([account], 5)
            await pipe.run()
            deliveries = await pipe.deliveries()
        finally:
            await pipe.store.close()
        states = Counter(deliveries[i].state for i in ids)
        assert states == {S.PUBLISHED: 3, S.SCHEDULED: 2}
        waiting = [deliveries[i] for i in ids if deliveries[i].state is S.SCHEDULED]
        # Deferred to when the rolling 24 h window frees a slot; nothing sent meanwhile.
        assert all(d.next_attempt_at > utcnow() + timedelta(hours=23) for d in waiting)
        assert all(d.attempts == 0 for d in waiting)
        assert sim.audit.summary()["limit_violations"] == 0


async def test_youtube_project_quota_defers_to_pacific_midnight(tmp_path):
    config = sim_config(overrides={"youtube": {"insert_calls_per_day": 2}})
    async with Simulator(config) as sim:
        pipe = await open_pipeline(sim, tmp_path, youtube={"insert_calls_per_day": 2})
        try:
            channel = await pipe.channel(Platform.YOUTUBE)
            ids = await pipe.schedule([channel], 3)
            await pipe.run()
            deliveries = await pipe.deliveries()
        finally:
            await pipe.store.close()
        states = Counter(deliveries[i].state for i in ids)
        assert states == {S.PUBLISHED: 2, S.SCHEDULED: 1}
        waiting = next(deliveries[i] for i in ids if deliveries[i].state is S.SCHEDULED)
        pacific = waiting.next_attempt_at.astimezone(ZoneInfo("America/Los_Angeles"))
        assert (pacific.hour, pacific.minute) == (0, 0)
        assert sim.audit.summary()["limit_violations"] == 0


async def test_linkedin_member_quota_defers_to_utc_midnight(tmp_path):
    config = sim_config(overrides={"linkedin": {"member_posts_per_day": 2}})
    async with Simulator(config) as sim:
        pipe = await open_pipeline(sim, tmp_path, linkedin={"member_posts_per_day": 2})
        try:
            member = await pipe.channel(Platform.LINKEDIN)
            ids = await pipe.schedule([member], 3)
            await pipe.run()
            deliveries = await pipe.deliveries()
        finally:
            await pipe.store.close()
        waiting = [deliveries[i] for i in ids if deliveries[i].state is S.SCHEDULED]
        assert len(waiting) == 1
        at = waiting[0].next_attempt_at
        assert (at.hour, at.minute, at.date()) == (0, 0, (utcnow() + timedelta(days=1)).date())
        assert sim.audit.summary()["limit_violations"] == 0


async def test_revoked_token_parks_the_channel_until_reauthorised(pipe, sim):
    page = await pipe.channel(Platform.FACEBOOK)
    ids = await pipe.schedule([page], 3)
    sim.revoke(Platform.FACEBOOK, page.external_id)
    await pipe.run()
    assert (await pipe.store.get_channel(page.id)).status is ChannelStatus.NEEDS_REAUTH
    assert sim.audit.summary()["posts"] == 0
    pipe.secrets.put(page.id, sim.reauthorize(Platform.FACEBOOK, page.external_id))
    await pipe.store.set_channel_status(page.id, ChannelStatus.ACTIVE)
    await pipe.run()
    deliveries = await pipe.deliveries()
    assert {deliveries[i].state for i in ids} == {S.PUBLISHED}
    assert sim.audit.summary()["posts"] == 3
    assert sim.audit.summary()["duplicates"] == 0


async def test_youtube_expired_access_token_is_refreshed(tmp_path):
    config = sim_config(overrides={"youtube": {"access_token_ttl_s": 0.2}})
    async with Simulator(config) as sim:
        pipe = await open_pipeline(sim, tmp_path)
        try:
            channel = await pipe.channel(Platform.YOUTUBE)
            issued = sim.clock.now()
            await eventually(lambda: sim.clock.now() > issued + 0.3, within_s=20)
            ids = await pipe.schedule([channel], 2)
            await pipe.run()
            deliveries = await pipe.deliveries()
        finally:
            await pipe.store.close()
        assert {deliveries[i].state for i in ids} == {S.PUBLISHED}
        assert (await _status(pipe, channel)) is ChannelStatus.ACTIVE


async def _status(pipe, channel):
    store = type(pipe.store)(pipe.store.path)
    await store.open()
    try:
        return (await store.get_channel(channel.id)).status
    finally:
        await store.close()
