"""The RabbitMQ queue beyond the contract: routing, confirms, redelivery, dead-lettering, depth,
a broker restart. Every test works under a name prefix of its own on the test broker, deleted
afterwards; the restart runs on a node of the test's own (tests/integration/rabbit_rig.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection

from herald.config import Settings
from herald.domain import Content, Delivery, Job, Platform, new_id, utcnow
from herald.errors import QueueError, QueueUnavailable
from herald.queues.amqp import Link, Topology
from herald.queues.bundles import bundles
from herald.queues.rabbitmq import RabbitQueue
from herald.queues.wire import decode_jobs, encode_job
from herald.testing import channel, eventually
from tests.conftest import RABBIT_URL, close_rabbit, new_rabbit_prefix, rabbit_connection
from tests.integration.rabbit_rig import OwnRabbit

pytestmark = pytest.mark.rabbitmq

WAIT_S = 5.0
REGIONS = ("default", "eu", "us")
FB = Platform.FACEBOOK


def job(platform: Platform = FB, region: str | None = None, text: str = "hello") -> Job:
    ch = channel(platform, region=region)
    delivery = Delivery(new_id("dlv"), new_id("post"), ch.id, ch.platform, utcnow())
    return Job(delivery, ch, Content(text=text), claim_token=new_id("claim"))


class Rabbit:
    """The test's prefix, a connection of its own for looking at the broker, and the queues
    it opened (closed at the end, with their connections)."""

    def __init__(self, prefix: str, connection: AbstractConnection) -> None:
        self.prefix = prefix
        self.connection = connection
        self.topology = Topology(prefix, delivery_limit=1)
        self.queues: list[RabbitQueue] = []

    def queue(self, **kw) -> RabbitQueue:
        kw.setdefault("prefix", self.prefix)
        queue = RabbitQueue(kw.pop("url", RABBIT_URL), **kw)
        self.queues.append(queue)
        return queue

    async def ready(self, platform: Platform = FB, region: str = "default") -> int:
        """Messages ready in one queue, as the broker counts them."""
        ch = await self.connection.channel()
        try:
            q = await ch.declare_queue(self.topology.queue(platform, region), passive=True)
            return int(q.declaration_result.message_count or 0)
        finally:
            await ch.close()

    async def dead(self) -> list[bytes]:
        """The bodies in the dead-letter queue (taken out of it)."""
        ch = await self.connection.channel()
        bodies = []
        try:
            q = await ch.get_queue(self.topology.dead_queue)
            while (message := await q.get(no_ack=True, fail=False)) is not None:
                bodies.append(message.body)
        finally:
            await ch.close()
        return bodies

    async def close(self) -> None:
        for queue in self.queues:
            await queue.close()


@pytest.fixture
async def rabbit() -> AsyncIterator[Rabbit]:
    prefix = new_rabbit_prefix()
    async with rabbit_connection(prefix, REGIONS) as connection:
        r = Rabbit(prefix, connection)
        try:
            yield r
        finally:
            await r.close()


async def got(queue: RabbitQueue) -> Job:
    return await asyncio.wait_for(queue.get(), WAIT_S)


async def taken(queue: RabbitQueue) -> Job:
    """The next job, got and acked (a queue keeps its connection while a job is not acked)."""
    done = await got(queue)
    await queue.ack(done)
    return done


async def dead_letters(rabbit: Rabbit, count: int) -> list[bytes]:
    """The bodies of ``count`` dead letters, once that many are in the dead-letter queue."""
    dead: list[bytes] = []

    async def enough() -> bool:
        dead.extend(await rabbit.dead())
        return len(dead) >= count

    await eventually(enough, within_s=WAIT_S)
    return dead


async def nothing_more(queue: RabbitQueue) -> None:
    """``queue`` has nothing to hand out: a get started now is still waiting a moment later."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.3)


# -- routing ------------------------------------------------------------------------------------
async def test_a_job_goes_to_the_queue_of_its_platform_and_its_channels_region(rabbit):
    publisher = rabbit.queue(platforms=(), region="eu")
    eu = rabbit.queue(platforms=[FB], region="eu")
    us = rabbit.queue(platforms=[FB], region="us")
    for_us, for_eu, unnamed = job(region="us"), job(region="eu"), job(region=None)
    youtube_eu = job(Platform.YOUTUBE, region="eu")
    await publisher.put([for_us, for_eu, unnamed, youtube_eu])
    assert publisher.depths() == {(FB, "us"): 1, (FB, "eu"): 2, (Platform.YOUTUBE, "eu"): 1}

    assert [await taken(eu), await taken(eu)] == [for_eu, unnamed]  # no region: the default
    assert await taken(us) == for_us
    await nothing_more(eu)  # never the US job, nor another platform's
    await nothing_more(us)
    assert await rabbit.ready(Platform.YOUTUBE, "eu") == 1


# -- publisher confirms -------------------------------------------------------------------------
async def test_put_returns_once_the_broker_holds_every_job(rabbit):
    publisher = rabbit.queue(platforms=(), bundle=16)
    put = [job(text=f"{n}") for n in range(200)]
    await publisher.put(put)
    assert await rabbit.ready() == 13  # confirmed: in the queue, not on the way
    assert publisher.depth() == 200
    consumer = rabbit.queue(platforms=[FB], prefetch=200)
    assert [await taken(consumer) for _ in put] == put


# -- several jobs a message ---------------------------------------------------------------------
def test_jobs_go_in_as_few_messages_as_fit_of_sizes_as_even_as_can_be():
    jobs = [job(text=str(n)) for n in range(35)]
    parts = bundles(jobs, 16)
    assert [len(part) for part in parts] == [12, 12, 11]
    assert [j for part in parts for j in part] == jobs
    assert [len(p) for p in bundles(jobs[:16], 16)] == [16]
    assert [len(p) for p in bundles(jobs[:3], 1)] == [1, 1, 1]


async def test_a_message_is_acked_with_its_last_job_and_goes_back_whole_if_it_was_not(rabbit):
    """The broker knows messages, not jobs: one of several jobs not finished keeps its message
    unacked, and a consumer that dies with it leaves every one of its jobs to another (those
    already finished find their claims gone there, as a redelivered job always does)."""
    put = [job(text=str(n)) for n in range(3)]
    await rabbit.queue(platforms=(), bundle=3).put(put)
    connection = await aio_pika.connect(RABBIT_URL)
    first = rabbit.queue(url=connection, platforms=[FB], ack_linger_s=0)
    held = [await got(first) for _ in put]
    await first.ack(held[0])
    await first.ack(held[2])
    await close_rabbit(connection)  # dies with the second job unfinished
    second = rabbit.queue(platforms=[FB], ack_linger_s=0)
    assert [await taken(second) for _ in put] == put
    await second.close()
    assert await rabbit.ready() == 0  # its last job acked: the message went


async def test_a_message_of_one_job_in_the_format_before_is_still_read(rabbit):
    consumer = rabbit.queue(platforms=[FB])
    await consumer.refresh_depth()  # declares the queues
    ch = await rabbit.connection.channel()
    exchange = await ch.get_exchange(rabbit.prefix)
    old = job(text="put by the version before")
    await exchange.publish(
        aio_pika.Message(encode_job(old), headers={"v": "1"}), "facebook.default"
    )
    await ch.close()
    assert await taken(consumer) == old
    assert consumer.undecodable == 0


async def test_a_worker_never_holds_more_than_its_prefetch_in_jobs_after_a_quiet_spell(rabbit):
    """The broker's window counts messages: after a quiet spell of one-job messages, a burst
    of full ones (the top of the hour) still gives a worker no more than its jobs' worth."""
    worker = rabbit.queue(platforms=[FB], prefetch=16, bundle=8, ack_linger_s=0)
    singles = rabbit.queue(platforms=(), bundle=1)
    for n in range(16):
        await singles.put([job(text=f"single {n}")])
        await taken(worker)
    burst = rabbit.queue(platforms=(), bundle=8)
    await burst.put([job(text=f"burst {n}") for n in range(8 * 10)])
    await got(worker)
    await asyncio.sleep(0.5)
    assert await rabbit.ready() == 10 - 2  # two messages of 8 out: 16 jobs, none more


async def test_a_worker_has_a_message_per_job_it_may_hold_when_messages_hold_one_job(rabbit):
    worker = rabbit.queue(platforms=[FB], prefetch=16, bundle=8)
    await rabbit.queue(platforms=(), bundle=1).put([job(text=str(n)) for n in range(5)])
    held = [await got(worker) for _ in range(2)]  # 16 jobs' worth: two messages, one job each
    assert len(held) == 2
    await nothing_more(worker)
    assert await rabbit.ready() == 3


async def test_a_put_the_broker_refuses_raises_queue_error_and_the_next_one_works(rabbit):
    # A queue of the same name, declared otherwise (classic, not quorum): every declaration
    # of the job queue is refused, so nothing can be put into it.
    ch = await rabbit.connection.channel()
    await ch.declare_queue(rabbit.topology.queue(FB, "default"), durable=True)
    publisher = rabbit.queue(platforms=())
    with pytest.raises(QueueError) as refused:
        await publisher.put([job()])
    assert not isinstance(refused.value, QueueUnavailable)
    await ch.queue_delete(rabbit.topology.queue(FB, "default"))
    await ch.close()
    await publisher.put([job()])
    assert await rabbit.ready() == 1


async def test_a_put_the_broker_cannot_route_raises_queue_error_and_the_next_one_works(rabbit):
    # Its queue unbound once the publisher declared and bound it: the broker returns the
    # message (mandatory) instead of dropping it, and the put must not pass for confirmed.
    publisher = rabbit.queue(platforms=())
    await publisher.put([job()])
    ch = await rabbit.connection.channel()
    queue = await ch.get_queue(rabbit.topology.queue(FB, "default"), ensure=False)
    await queue.unbind(rabbit.topology.exchange, Topology.routing_key(FB, "default"))
    with pytest.raises(QueueError) as unroutable:
        await publisher.put([job(text="unroutable")])
    assert not isinstance(unroutable.value, QueueUnavailable)
    await ch.close()
    await publisher.put([job(text="bound again")])  # a new link declares and binds again
    assert await rabbit.ready() == 2


# -- acks, redelivery, dead letters -------------------------------------------------------------
async def test_a_job_not_acked_when_its_consumers_connection_dies_goes_to_another(rabbit):
    await rabbit.queue(platforms=()).put([mine := job()])
    connection = await aio_pika.connect(RABBIT_URL)
    first = rabbit.queue(url=connection, platforms=[FB])
    assert await got(first) == mine
    republished: list[int] = []  # herald_lease_recoveries_total{kind="republished"}
    second = rabbit.queue(platforms=[FB], on_redelivered=republished.append)
    await nothing_more(second)  # held, unacked, by the first
    assert republished == []
    await close_rabbit(connection)  # the first consumer's process dies
    assert await taken(second) == mine
    assert republished == [1]
    await second.close()
    assert await rabbit.ready() == 0


@pytest.fixture
def ack_frames(monkeypatch) -> list[tuple[int, bool]]:
    """Every ack frame the queues send: (delivery tag, multiple)."""
    frames: list[tuple[int, bool]] = []
    send = Link._send_acks

    async def spy(self: Link, batch: list[tuple[int, bool]]) -> None:
        frames.extend(batch)
        await send(self, batch)

    monkeypatch.setattr(Link, "_send_acks", spy)
    return frames


async def test_acks_linger_and_go_in_as_few_frames_as_the_tags_allow(rabbit, ack_frames):
    """Jobs finished out of order: the acks wait, then those below every tag still unacked go
    in one frame (``multiple``) and the others one by one; a tag is never acked twice (the
    broker would close the channel), and nothing acked comes back."""
    await rabbit.queue(platforms=(), bundle=1).put([job(text=str(n)) for n in range(5)])
    connection = await aio_pika.connect(RABBIT_URL)
    consumer = rabbit.queue(url=connection, platforms=[FB], bundle=1, ack_batch=3, ack_linger_s=0.2)
    jobs = [await got(consumer) for _ in range(5)]  # delivery tags 1 to 5
    await consumer.ack(jobs[1])
    await consumer.ack(jobs[0])
    assert ack_frames == []  # lingering: fewer than ack_batch
    await consumer.ack(jobs[3])  # the third: they go
    assert ack_frames == [(2, True), (4, False)]  # 3 is still held
    await consumer.ack(jobs[4])
    await eventually(lambda: len(ack_frames) == 3, within_s=WAIT_S)  # after the linger
    assert ack_frames[2] == (5, False)
    await consumer.ack(jobs[2])
    await consumer.close()  # acks what lingers before it closes
    assert ack_frames[3] == (3, True)
    await close_rabbit(connection)
    assert await rabbit.ready() == 0  # every one acked: none went back to the queue


async def test_a_job_redelivered_delivery_limit_times_is_dead_lettered(rabbit):
    await rabbit.queue(platforms=(), delivery_limit=2).put([doomed := job(text="doomed")])
    for _ in range(3):  # delivered, and its consumer dies, again and again
        connection = await aio_pika.connect(RABBIT_URL)
        consumer = rabbit.queue(url=connection, platforms=[FB], delivery_limit=2)
        assert await got(consumer) == doomed
        await close_rabbit(connection)
    dead = await dead_letters(rabbit, 1)
    assert [decode_jobs(body) for body in dead] == [[doomed]]
    last = rabbit.queue(platforms=[FB], delivery_limit=2)
    await nothing_more(last)


async def test_a_message_that_holds_no_job_is_dead_lettered_never_handed_out(rabbit):
    consumer = rabbit.queue(platforms=[FB])
    await consumer.refresh_depth()  # declares the queues
    ch = await rabbit.connection.channel()
    exchange = await ch.get_exchange(rabbit.prefix)
    await exchange.publish(aio_pika.Message(b"not a job", headers={"v": "1"}), "facebook.default")
    await exchange.publish(aio_pika.Message(b"{}", headers={"v": "99"}), "facebook.default")
    await ch.close()
    await consumer.put([good := job()])
    assert await taken(consumer) == good
    assert consumer.undecodable == 2
    # Rejected after being counted: the broker dead-letters them a moment later.
    assert sorted(await dead_letters(rabbit, 2)) == [b"not a job", b"{}"]


# -- close --------------------------------------------------------------------------------------
async def test_close_takes_back_only_this_queues_jobs_at_the_head_of_the_queue(rabbit):
    mine, theirs = rabbit.queue(platforms=()), rabbit.queue(platforms=())
    a1, a2, b1, a3 = job(text="a1"), job(text="a2"), job(text="b1"), job(text="a3")
    await mine.put([a1, a2])
    await theirs.put([b1])
    await mine.put([a3])
    assert await mine.close() == [a1, a2]  # a3 is behind another publisher's job: left
    consumer = rabbit.queue(platforms=[FB])
    assert [await taken(consumer), await taken(consumer)] == [b1, a3]


# -- depth --------------------------------------------------------------------------------------
async def test_depth_is_the_last_count_less_what_was_taken_and_refreshes_while_consuming(rabbit):
    consumer = rabbit.queue(platforms=[FB], prefetch=2, refresh_s=0.2)
    await consumer.put([job(text=f"{n}") for n in range(5)])
    assert consumer.depth() == 5
    await taken(consumer)
    assert consumer.depth() == 4
    assert consumer.depths() == {(FB, "default"): 4}

    # Another process puts: counted at the next refresh. The broker counts messages; one this
    # queue did not put is taken to hold as many jobs as the messages it saw (5 here).
    other = rabbit.queue(platforms=())
    await other.put([job() for _ in range(5)])
    await eventually(lambda: consumer.depth() == 9, within_s=WAIT_S)

    watcher = rabbit.queue(platforms=())  # a process that never put asks the broker
    assert watcher.depth() == 0
    await watcher.refresh_depth()
    assert watcher.depths() == {}  # it reads no queue and put into none: nothing to say
    reader = rabbit.queue(platforms=[FB], bundle=16)
    await reader.refresh_depth()
    # It has seen no message: each is taken to hold as many jobs as a message may.
    assert reader.depth() == 16 * await rabbit.ready()


# -- the broker goes away and comes back --------------------------------------------------------
@pytest.fixture
def own_rabbit(tmp_path: Path) -> AsyncIterator[OwnRabbit]:
    node = OwnRabbit(tmp_path)
    node.start()
    try:
        yield node
    finally:
        node.stop()


async def test_while_the_broker_is_down_calls_raise_queue_unavailable_then_work_again(own_rabbit):
    def queue(**kw) -> RabbitQueue:
        return RabbitQueue(own_rabbit.url, connect_timeout_s=2.0, timeout_s=3.0, **kw)

    publisher, consumer = queue(platforms=()), queue(platforms=[FB])
    await publisher.put([before := job(text="before")])
    assert await got(consumer) == before  # taken, not acked when the broker stops
    waiting = asyncio.create_task(consumer.get())

    await asyncio.to_thread(own_rabbit.stop)
    with pytest.raises(QueueUnavailable):
        await asyncio.wait_for(waiting, WAIT_S)
    await consumer.ack(before)  # received on a lost connection: nothing to send, no error
    with pytest.raises(QueueUnavailable):
        await asyncio.wait_for(publisher.put([job()]), WAIT_S)
    with pytest.raises(QueueUnavailable):
        await asyncio.wait_for(consumer.get(), WAIT_S)

    await asyncio.to_thread(own_rabbit.start)
    await publisher.put([after := job(text="after")])
    # The job never acked was kept (a durable queue, a persistent message): handed out again.
    assert [await got(consumer), await got(consumer)] == [before, after]
    for done in (before, after):
        await consumer.ack(done)
    assert await consumer.close() == []
    assert await publisher.close() == []


async def test_a_worker_of_several_platforms_holds_no_more_than_its_prefetch_in_all(rabbit):
    """RabbitMQ's window is per consumer, one a queue: a worker reading four platforms splits
    its jobs' worth between them."""
    platforms = (FB, Platform.INSTAGRAM, Platform.LINKEDIN, Platform.YOUTUBE)
    worker = rabbit.queue(platforms=platforms, prefetch=64, bundle=8)
    burst = rabbit.queue(platforms=(), bundle=8)
    for platform in platforms:
        await burst.put([job(platform=platform, text=f"{platform.value} {n}") for n in range(80)])
    await got(worker)
    await asyncio.sleep(0.5)
    out = [10 - await rabbit.ready(platform) for platform in platforms]
    assert out == [2, 2, 2, 2]  # 8 messages of 8: 64 jobs


async def test_a_facebook_worker_has_two_messages_a_request_when_they_hold_one_job(rabbit):
    """When the load is light and messages hold one job, a Facebook worker (8 requests in
    flight) still has two messages a request: jobs held for a limit or a cap, being written or
    with their ack lingering do not leave its requests without work."""
    # As herald.bootstrap.open_queue builds a worker's queue: four times what its intake holds.
    prefetch = 4 * Settings().worker_prefetch([FB])
    worker = rabbit.queue(platforms=[FB], prefetch=prefetch)
    await rabbit.queue(platforms=(), bundle=1).put([job(text=str(n)) for n in range(20)])
    held = [await got(worker) for _ in range(16)]
    assert len(held) == 16
    await nothing_more(worker)
