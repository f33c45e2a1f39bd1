"""The metrics of the distributed mode against real servers: the busiest key of each rule as
the shared limiter's admissions see it, the limiter and the broker going away and coming back
(``herald_limiter_up``, ``herald_broker_up`` and their error counters)."""

from __future__ import annotations

import asyncio

import pytest

from herald.config import EngineSettings
from herald.demo.servers import OwnRedis, free_port
from herald.domain import Content, Delivery, Job, Platform, new_id, utcnow
from herald.engine import Engine
from herald.engine.dispatcher import InFlight
from herald.engine.health import StoreHealth
from herald.engine.intake import Intake
from herald.engine.limiter_guard import LimiterGuard
from herald.engine.metrics import Metrics
from herald.errors import LimiterUnavailable
from herald.limits.redis import RedisLimiter
from herald.limits.rules import LimitClaim, LimitRule, RollingWindow
from herald.queues.rabbitmq import RabbitQueue
from herald.queues.redis_streams import RedisStreamQueue
from herald.stores.memory import MemoryStore
from herald.testing import StaticCredentials, channel, eventually, new_post
from herald.timing import SystemClock
from tests.conftest import drop_keys, new_redis, new_redis_prefix
from tests.suites.engine import settings

FB = Platform.FACEBOOK
PAGE_CALLS = LimitRule("page_calls", "calls", "channel", RollingWindow(100, 3600.0))


def calls(account: str, cost: int = 1) -> list[LimitClaim]:
    return [LimitClaim(f"facebook:page_calls:{account}", PAGE_CALLS, cost)]


async def no_grants() -> list[tuple[float, list[LimitClaim]]]:
    return []


def job() -> Job:
    ch = channel(FB)
    delivery = Delivery(new_id("dlv"), new_id("post"), ch.id, ch.platform, utcnow())
    return Job(delivery, ch, Content(text="hello"), claim_token=new_id("claim"))


@pytest.mark.redis
async def test_each_worker_sees_the_fleet_s_use_of_the_keys_it_admits_on():
    """Two workers on one Redis: what one admits on a key counts in what the other then sees
    of it, without either scanning Redis; the busiest key is the rule's figure."""
    client, prefix = new_redis(), new_redis_prefix()
    one, other = RedisLimiter(client, prefix=prefix), RedisLimiter(client, prefix=prefix)
    try:
        await one.rebuild(no_grants)
        for _ in range(5):
            assert await one.reserve(calls("busy"), 10.0) == 0.0
        assert await one.reserve(calls("quiet"), 10.0) == 0.0
        assert await other.reserve(calls("busy", 2), 11.0) == 0.0
        assert other.quota_use(12.0) == {("facebook", "page_calls"): 7.0}
        assert one.quota_use(12.0) == {("facebook", "page_calls"): 5.0}  # as it last saw it
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


@pytest.mark.redis
async def test_the_limiter_is_reported_down_while_redis_is_away_and_up_once_rebuilt():
    server = OwnRedis()
    server.start()
    limiter = RedisLimiter.from_url(server.url, timeout_s=0.5)
    metrics = Metrics(role="worker")
    health = StoreHealth(EngineSettings(), metrics, SystemClock())

    async def restore(limiter) -> int | None:
        return await limiter.rebuild(no_grants)

    guard = LimiterGuard(limiter, restore, health=health, metrics=metrics)
    stopping = asyncio.Event()

    def up() -> float | None:
        return metrics.registry.get_sample_value("herald_limiter_up")

    def errors() -> float | None:
        return metrics.registry.get_sample_value("herald_limiter_errors_total")

    try:
        await guard.restore(stopping)
        assert await guard.reserve(calls("a"), 1.0) == 0.0
        assert (up(), errors()) == (1.0, 0.0)
        server.stop()
        with pytest.raises(LimiterUnavailable):
            await guard.reserve(calls("a"), 2.0)
        assert (up(), errors()) == (0.0, 1.0)
        await guard.refund(calls("a"), 1.0, unsent=True)  # lost, and counted
        assert errors() == 2.0
        server.start()  # empty: admits nothing until rebuilt
        await guard.restore(stopping)
        assert up() == 1.0
        assert await guard.reserve(calls("a"), 3.0) == 0.0
    finally:
        await limiter.aclose()
        server.stop()


@pytest.mark.redis
async def test_a_worker_reports_the_broker_down_while_it_cannot_read_and_up_once_it_reads():
    server = OwnRedis()
    server.start()
    metrics = Metrics(role="worker")
    health = StoreHealth(EngineSettings(), metrics, SystemClock())
    queue = RedisStreamQueue(server.url, platforms=[FB], block_s=0.2, connect_timeout_s=0.5)
    intake = Intake(queue, InFlight(), health, retry_s=0.05, metrics=metrics)
    taken: list[Job] = []
    reading = asyncio.create_task(intake.run(taken.append))

    def broker(name: str = "herald_broker_up", **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    publishers: list[RedisStreamQueue] = []  # closed at the end: a close takes back the unread

    async def put(one: Job) -> None:
        publishers.append(RedisStreamQueue(server.url, platforms=()))
        await publishers[-1].put([one])

    try:
        await put(job())
        await eventually(lambda: len(taken) == 1, within_s=5)
        assert broker() == 1.0
        server.stop()
        await eventually(lambda: broker() == 0.0, within_s=5)
        assert (broker("herald_broker_errors_total", operation="consume") or 0) >= 1
        server.start()
        await put(job())
        await eventually(lambda: len(taken) == 2, within_s=10)
        assert broker() == 1.0
    finally:
        for done in taken:  # a queue lets its connection go once what it handed out is acked
            await queue.ack(done)
        intake.close()
        for opened in (queue, *publishers):
            await opened.close()
        await asyncio.wait_for(reading, 10)
        server.stop()


@pytest.mark.redis
@pytest.mark.rabbitmq
@pytest.mark.parametrize("scheme", ["redis", "amqp"])
async def test_a_dispatcher_that_cannot_hand_off_reports_the_broker_down(scheme):
    """Nothing listens where the broker should be: each hand-off that fails is counted."""
    port = free_port()
    queue: RedisStreamQueue | RabbitQueue = (
        RedisStreamQueue(f"redis://127.0.0.1:{port}/0", connect_timeout_s=0.5)
        if scheme == "redis"
        else RabbitQueue(f"amqp://guest:guest@127.0.0.1:{port}/", connect_timeout_s=0.5)
    )
    store = MemoryStore()
    fb = channel(FB)
    await store.add_channels([fb])
    await store.add_posts([new_post([fb])])
    engine = Engine(
        settings(),
        store,
        {},
        credentials=StaticCredentials(),
        queue=queue,
        role="dispatcher",
        rules={},
    )
    running = asyncio.create_task(engine.run())

    def failed() -> float:
        found = engine.metrics.registry.get_sample_value(
            "herald_broker_errors_total", {"operation": "publish"}
        )
        return found or 0.0

    try:
        await eventually(lambda: failed() >= 2, within_s=20)  # tried again, and counted again
        assert engine.metrics.registry.get_sample_value("herald_broker_up") == 0.0
    finally:
        engine.request_stop()
        await asyncio.wait_for(running, 30)
