"""Pauses with a memory: outages of a platform, and throttles that name no end.

On virtual time, against the in-memory limiter: what each answer does to the pauses, and,
through whole engines on the fake platform, what the platform sees of it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import replace
from datetime import timedelta

import pytest

from herald.config import EngineSettings, Settings
from herald.domain import Content, Delivery, Job, Platform
from herald.engine import Engine
from herald.engine.metrics import Metrics
from herald.engine.pauses import PROBE_S, Pauses, answered
from herald.errors import (
    ContentRejected,
    OutcomeUnknown,
    RateLimited,
    RequestNotSent,
    TransientPlatformError,
)
from herald.limits.memory import MemoryLimiter
from herald.limits.rules import outage_key, pause_key
from herald.states import DeliveryState
from herald.stores.memory import MemoryStore
from herald.testing import FakeConnector, FakePlatform, StaticCredentials, channel, new_post
from herald.testing.virtual_time import running_clock
from herald.types import Published

pytestmark = pytest.mark.virtual_time

S = DeliveryState
FB, LI = Platform.FACEBOOK, Platform.LINKEDIN


class Ceiling(random.Random):
    """Full jitter that always draws its ceiling: pauses a test can name exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


def job(platform: Platform = FB, account: str = "page-1") -> Job:
    ch = channel(platform, external_id=account)
    now = running_clock().now()
    delivery = Delivery("dlv_1", "post_1", ch.id, platform, now, S.CLAIMED)
    return Job(delivery, ch, Content(text="hi"), "token")


def unsent() -> RequestNotSent:
    return RequestNotSent("facebook: request not sent (ClientConnectorError)", platform="facebook")


def unnamed(scope: str = "channel") -> RateLimited:
    return RateLimited("slow down", retry_after=30.0, scope=scope, status=400, named=False)  # type: ignore[arg-type]


class World:
    def __init__(self, **settings: float) -> None:
        base = {
            "outage_errors": 3,
            "outage_window_s": 10.0,
            "outage_pause_base_s": 2.0,
            "outage_pause_cap_s": 20.0,
            "throttle_pause_s": 30.0,
            "throttle_pause_cap_s": 200.0,
        }
        base.update(settings)
        self.limiter = MemoryLimiter()
        self.metrics = Metrics()
        self.clock = running_clock()
        self.pauses = Pauses(
            self.limiter, EngineSettings(**base), self.metrics, self.clock, Ceiling()
        )

    def now(self) -> float:
        return self.clock.time()

    async def paused_for(self, key: str) -> float:
        return await self.limiter.reserve((), self.now(), pauses=(key,))

    def outage(self, platform: Platform = FB) -> float:
        value = self.metrics.registry.get_sample_value(
            "herald_platform_outage", {"platform": platform.value}
        )
        return value or 0.0


@pytest.fixture
def world() -> World:
    return World()


def test_what_counts_as_an_answer():
    assert answered(Published("1"))
    assert answered(None)  # a look-up that read the listing and found nothing
    assert answered(ContentRejected("no", status=400))
    assert not answered(unsent())
    assert not answered(OutcomeUnknown("timeout"))  # no answer came
    assert not answered(TransientPlatformError("no answer (ServerDisconnectedError)"))


async def test_requests_that_never_left_pause_the_platform_once_they_are_many(world, caplog):
    caplog.set_level(logging.INFO, "herald.pauses")
    for _ in range(2):
        await world.pauses.observe(job(), world.now(), unsent())
    assert await world.paused_for(outage_key(FB)) == 0.0  # two could be bad luck
    await world.pauses.observe(job(account="page-2"), world.now(), unsent())
    assert await world.paused_for(outage_key(FB)) == pytest.approx(2.0)
    assert await world.paused_for(outage_key(LI)) == 0.0  # only the platform that is down
    assert world.outage() == 1
    (record,) = [r for r in caplog.records if r.message == "platform.outage"]
    assert (record.levelno, record.pause_s, record.pauses) == (logging.WARNING, 2.0, 1)


async def test_errors_spread_wider_than_the_window_are_no_outage(world):
    for _ in range(4):
        await world.pauses.observe(job(), world.now(), unsent())
        await asyncio.sleep(6)
    assert await world.paused_for(outage_key(FB)) == 0.0


async def test_an_outage_pause_grows_while_requests_after_it_still_fail(world):
    for _ in range(3):
        await world.pauses.observe(job(), world.now(), unsent())
    pauses = []
    for _ in range(5):
        pauses.append(await world.paused_for(outage_key(FB)))
        await asyncio.sleep(pauses[-1])
        sent = world.now()
        # Two requests left together after the pause: only one lengthens it.
        await world.pauses.observe(job(), sent, unsent())
        await world.pauses.observe(job(), sent - 3.0, unsent())  # on the wire before it began
    assert pauses == pytest.approx([2.0, 4.0, 8.0, 16.0, 20.0])  # doubling, capped


async def test_the_first_answer_after_a_pause_ends_the_outage(world, caplog):
    caplog.set_level(logging.INFO, "herald.pauses")
    before = world.now()
    await asyncio.sleep(0.1)
    for _ in range(3):
        await world.pauses.observe(job(), world.now(), unsent())
    await asyncio.sleep(2.0)
    # An answer to a request that left before the outage proves nothing about now.
    await world.pauses.observe(job(), before, Published("1"))
    assert world.outage() == 1
    await world.pauses.observe(job(), world.now(), ContentRejected("no", status=400))
    assert world.outage() == 0
    assert any(r.message == "platform.recovered" for r in caplog.records)
    # A new outage needs its own run of errors.
    await world.pauses.observe(job(), world.now(), unsent())
    assert await world.paused_for(outage_key(FB)) == 0.0


async def test_an_unnamed_throttle_doubles_while_it_lasts_and_a_success_resets_it(world):
    key = pause_key(FB, "channel", "page-1")
    waits = []
    for _ in range(5):
        got = await world.pauses.observe(job(), world.now(), unnamed())
        assert isinstance(got, RateLimited)
        waits.append(got.retry_after)
        await asyncio.sleep(got.retry_after)
    assert waits == [30.0, 60.0, 120.0, 200.0, 200.0]  # doubling from the pause, capped
    # A success on the scope, of a request that left after the last throttle, resets it.
    await world.pauses.observe(job(), world.now(), Published("1"))
    got = await world.pauses.observe(job(), world.now(), unnamed())
    assert got.retry_after == 30.0
    assert await world.paused_for(key) == 0.0  # the policy sets the pause, from retry_after


async def test_throttles_of_requests_already_on_the_wire_share_one_pause(world):
    sent = world.now()
    await asyncio.sleep(0.5)  # the answers take their time
    first = await world.pauses.observe(job(), sent, unnamed())
    await asyncio.sleep(1.0)
    second = await world.pauses.observe(job(), sent, unnamed())  # left with the first one
    assert (first.retry_after, second.retry_after) == (30.0, 29.0)  # same end, not doubled
    # Nor does an old success reset a pause that began after it left.
    await world.pauses.observe(job(), sent, Published("1"))
    await asyncio.sleep(29.0)
    third = await world.pauses.observe(job(), world.now(), unnamed())
    assert third.retry_after == 60.0


async def test_named_throttles_and_other_scopes_are_left_alone(world):
    named = RateLimited("wait", retry_after=300.0, scope="channel", status=429)
    assert await world.pauses.observe(job(), world.now(), named) is named
    app = await world.pauses.observe(job(), world.now(), unnamed("app"))
    other_page = await world.pauses.observe(job(account="page-2"), world.now(), unnamed())
    assert (app.retry_after, other_page.retry_after) == (30, 30)
    await asyncio.sleep(300)
    after_named = await world.pauses.observe(job(), world.now(), unnamed())
    assert after_named.retry_after == 30  # a named pause is no step of the ladder


async def test_after_a_pause_one_request_finds_out_while_the_others_wait(world):
    first, second = job(), job(account="page-1")
    second = Job(replace(second.delivery, id="dlv_2"), second.channel, second.content, "t2")
    assert (world.pauses.gate_s(first), world.pauses.gate_s(second)) == (0.0, 0.0)  # no pause
    world.pauses.release(first)
    await world.pauses.observe(first, world.now(), unnamed())
    await asyncio.sleep(30)  # the pause is over: who goes?
    assert world.pauses.gate_s(first) == 0.0  # the first asks
    assert world.pauses.gate_s(second) == pytest.approx(PROBE_S)  # the second waits for it
    assert world.pauses.gate_s(first) == 0.0  # asking again changes nothing for the first
    assert world.pauses.release(first)
    assert world.pauses.gate_s(second) == 0.0  # answered, or never sent: the next may go
    assert not world.pauses.release(first)
    # A success of the one that asked ends the gating.
    sent = world.now()
    await asyncio.sleep(0.1)
    await world.pauses.observe(second, sent, Published("1"))
    world.pauses.release(second)
    assert world.pauses.gate_s(first) == 0.0
    assert world.pauses.gate_s(second) == 0.0


# -- through an engine ------------------------------------------------------------------------
def engine(store, connector, *, rng=None, **engine_settings) -> Engine:
    base = {
        "backoff_base_s": 0.5,
        "backoff_cap_s": 5.0,
        "max_retries": 1,
        "throttle_pause_s": 5.0,
        "hold_s": 1.0,
        "outage_errors": 5,
        "outage_pause_base_s": 4.0,
        "outage_pause_cap_s": 30.0,
    }
    base.update(engine_settings)
    return Engine(
        Settings(engine=EngineSettings(**base)),
        store,
        {connector.platform: connector},
        credentials=StaticCredentials(),
        rules={connector.platform: ()},
        exclusive=True,
        clock=running_clock(),
        rng=rng,
    )


async def test_an_outage_holds_the_platform_s_requests_and_spends_no_retry():
    store, world = MemoryStore(), FakePlatform()
    pages = [channel(FB) for _ in range(3)]
    await store.add_channels(pages)
    await store.add_posts([new_post([page]) for page in pages for _ in range(4)])
    refusals = [unsent() for _ in range(14)]
    connector = FakeConnector(FB, world, script={"*": refusals})
    run = engine(store, connector, rng=Ceiling())
    await asyncio.wait_for(run.run(burst=True), 600)
    deliveries = await store.list_deliveries(limit=100)
    assert {d.state for d in deliveries} == {S.PUBLISHED}  # max_retries=1: none spent
    assert {d.retries for d in deliveries} == {0}
    assert world.published() == 12
    assert world.duplicates() == 0
    # Five refusals make an outage; from then on one request tries each time a pause ends
    # (those granted with it wait for the next), and the pauses double from 4 s up to 30 s.
    gaps = [b - a for a, b in zip(world.arrivals, world.arrivals[1:], strict=False)]
    assert gaps[:4] == [0.0] * 4
    assert gaps[4:14] == pytest.approx([4.0, 8.0, 16.0] + [30.0] * 7)  # 9 failed, the 10th not
    assert max(gaps[14:]) == 0.0  # the platform answered: everything else went at once
    metric = run.metrics.registry.get_sample_value
    assert metric("herald_requests_not_sent_total", {"platform": "facebook"}) == 14
    assert metric("herald_platform_outage", {"platform": "facebook"}) == 0  # recovered


async def test_a_pause_that_begins_while_a_request_is_readied_keeps_it_in():
    # A delivery is granted, then its secrets take a while; meanwhile another delivery of the
    # app is throttled. The first must not go out inside the app's pause.
    store, world = MemoryStore(), FakePlatform()
    slow, quick = channel(FB), channel(FB)
    await store.add_channels([slow, quick])

    class SlowSecrets(StaticCredentials):
        async def resolve(self, ch):
            if ch.id == slow.id:
                await asyncio.sleep(1.0)
            return await super().resolve(ch)

    throttle = RateLimited("app limit", retry_after=10.0, scope="app", status=400)
    await store.add_posts([new_post([slow], text="slow"), new_post([quick], text="quick")])
    connector = FakeConnector(FB, world, script={"quick": [throttle]})
    run = Engine(
        Settings(engine=EngineSettings(hold_s=1.0)),
        store,
        {FB: connector},
        credentials=SlowSecrets(),
        rules={FB: ()},
        exclusive=True,
        clock=running_clock(),
    )
    start = asyncio.get_running_loop().time()  # the fake platform's arrivals are loop times
    await asyncio.wait_for(run.run(burst=True), 600)
    arrivals = [at - start for at in world.arrivals]
    assert arrivals[0] < 0.5  # the quick one, throttled
    assert all(at >= 10.0 for at in arrivals[1:])  # nothing else inside the pause
    assert world.published() == 2
    published = {d.post_id: d for d in await store.list_deliveries(limit=10)}
    assert all(d.state is S.PUBLISHED and d.retries == 0 for d in published.values())


async def test_a_throttle_that_names_no_end_is_met_with_growing_pauses():
    store, world = MemoryStore(), FakePlatform()
    page = channel(FB)
    await store.add_channels([page])
    await store.add_posts([new_post([page], text="knock")])
    throttles = [unnamed() for _ in range(4)]
    connector = FakeConnector(FB, world, script={"knock": throttles})
    run = engine(store, connector, throttle_pause_s=5.0, throttle_pause_cap_s=30.0)
    await asyncio.wait_for(run.run(burst=True, burst_horizon_s=120), 600)
    gaps = [b - a for a, b in zip(world.arrivals, world.arrivals[1:], strict=False)]
    assert gaps == pytest.approx([5.0, 10.0, 20.0, 30.0], abs=0.5)
    (delivery,) = await store.list_deliveries(limit=1)
    assert delivery.state is S.PUBLISHED
    assert delivery.published_at - delivery.due_at > timedelta(seconds=60)
