"""The engine's metrics move with what it does: admissions granted, sends put on the wire late,
the busiest key of each limit rule, claims recovered; each role shows only what it has."""

from __future__ import annotations

from datetime import timedelta

import pytest

from herald.domain import Platform
from herald.engine import Engine
from herald.limits.rules import LimitRule, RollingWindow
from herald.testing import FakeConnector, FakePlatform, StaticCredentials, channel, new_post
from herald.testing.virtual_time import running_clock
from tests.suites.engine import drain, settings
from tests.suites.store_contract import claim

pytestmark = pytest.mark.virtual_time

FB = Platform.FACEBOOK
PAGE_CALLS = LimitRule("page_calls", "calls", "channel", RollingWindow(10, 3600.0))
APP_CALLS = LimitRule("app_calls", "calls", "app", RollingWindow(100, 3600.0))


def engine_on(store, **kw) -> Engine:
    return Engine(
        settings(),
        store,
        {FB: FakeConnector(FB, FakePlatform())},
        credentials=StaticCredentials(),
        rules={FB: (PAGE_CALLS, APP_CALLS)},
        exclusive=True,
        clock=running_clock(),
        **kw,
    )


def value(engine: Engine, name: str, **labels: str) -> float | None:
    return engine.metrics.registry.get_sample_value(name, labels)


async def test_an_engine_s_metrics_follow_its_work(store):
    busy, quiet = channel(FB), channel(FB)
    await store.add_channels([busy, quiet])
    late_by = timedelta(seconds=30)
    due = running_clock().now() - late_by
    await store.add_posts([new_post([busy], due_at=due) for _ in range(3)])
    await store.add_posts([new_post([quiet], due_at=due)])
    # A claim left by an engine that is gone: the start recovers it.
    assert len((await claim(store, running_clock().now(), limit=1)).jobs) == 1
    engine = engine_on(store)
    assert value(engine, "herald_quota_used", platform="facebook", rule="page_calls") == 0.0

    await drain(engine)

    assert value(engine, "herald_lease_recoveries_total", kind="expired_lease") == 1.0
    assert value(engine, "herald_rate_limit_grants_total", platform="facebook") == 4.0
    # Due 30 s before the engine started: every request went out at least that late.
    sent = value(engine, "herald_delivery_sent_lateness_seconds_count", platform="facebook")
    late = value(engine, "herald_delivery_sent_lateness_seconds_sum", platform="facebook")
    assert sent == 4.0
    assert late is not None
    assert late >= 4 * late_by.total_seconds()
    # The busiest channel's three calls, the app's four; what each rule allows.
    assert value(engine, "herald_quota_used", platform="facebook", rule="page_calls") == 3.0
    assert value(engine, "herald_quota_used", platform="facebook", rule="app_calls") == 4.0
    assert value(engine, "herald_quota_allowed", platform="facebook", rule="page_calls") == 10.0
    assert value(engine, "herald_quota_allowed", platform="facebook", rule="app_calls") == 100.0
    assert value(engine, "herald_limiter_up") == 1.0
    assert value(engine, "herald_limiter_errors_total") == 0.0
    # Not a process of the distributed mode: no broker to report on.
    assert value(engine, "herald_broker_up") is None


async def test_a_dispatcher_shows_the_broker_and_no_limiter(store):
    engine = engine_on(store, role="dispatcher")
    assert value(engine, "herald_broker_up") == 1.0
    assert value(engine, "herald_limiter_up") is None
    assert value(engine, "herald_quota_allowed", platform="facebook", rule="page_calls") is None


async def test_every_platform_shows_no_outage_before_its_first(store):
    # An outage panel or alert reads 0, not a missing series, until an outage happens.
    engine = engine_on(store)
    for platform in Platform:
        assert value(engine, "herald_platform_outage", platform=platform.value) == 0.0
