"""What the Redis Streams queue does beyond the JobQueue contract: consumers in several
processes, take-over of a dead consumer's entries, bounded streams, platforms and regions,
messages that hold no job, an unreachable server, the backlog an autoscaler reads."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from herald.constants import REDIS_QUEUE_GROUP
from herald.domain import Content, Delivery, Job, Platform, new_id, utcnow
from herald.errors import QueueError, QueueUnavailable
from herald.queues.metrics import BACKLOG_METRIC, QueueBacklog
from herald.queues.redis_streams import RedisStreamQueue, stream_key
from herald.queues.wire import encode_job
from herald.testing import channel, eventually
from tests.conftest import REDIS_URL, new_redis_prefix, redis_client
from tests.suites.queue_contract import WAIT_S, take_until_closed, waiting_get

pytestmark = pytest.mark.redis


def jobs_for(platform: Platform, count: int) -> list[Job]:
    ch = channel(platform)
    return [
        Job(
            Delivery(new_id("dlv"), new_id("post"), ch.id, platform, utcnow()),
            ch,
            Content(text=f"{platform.value} {n}"),
            claim_token=new_id("claim"),
        )
        for n in range(count)
    ]


class Queues:
    """Opens queues on one key prefix, as the processes of one deployment would."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.opened: list[RedisStreamQueue] = []

    def open(self, client: Redis | None = None, **kw) -> RedisStreamQueue:
        queue = RedisStreamQueue(client or self.client, prefix=self.prefix, **kw)
        self.opened.append(queue)
        return queue

    def key(self, platform: Platform, region: str = "default") -> str:
        return stream_key(self.prefix, platform, region)

    async def close(self) -> None:
        for queue in self.opened:
            await queue.close()


@pytest.fixture
async def queues(request) -> AsyncIterator[Queues]:
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        opened = Queues(client, prefix)
        try:
            yield opened
        finally:
            await opened.close()


async def pending(queues: Queues, platform: Platform) -> list[dict]:
    return await queues.client.xpending_range(
        queues.key(platform), REDIS_QUEUE_GROUP, "-", "+", 100
    )


async def test_a_dead_consumers_job_is_taken_over_once_idle(queues):
    dying_client = Redis.from_url(REDIS_URL)
    dying = queues.open(dying_client, consumer="dying", claim_idle_s=0.3)
    (job,) = jobs_for(Platform.FACEBOOK, 1)
    await dying.put([job])
    assert await asyncio.wait_for(dying.get(), WAIT_S) == job
    await dying_client.aclose()  # the process dies: no ack, no close
    queues.opened.remove(dying)
    with warnings.catch_warnings():
        # What a dead process leaves: a client never closed (its reading connection).
        warnings.simplefilter("ignore", ResourceWarning)
        del dying
        gc.collect()

    republished: list[int] = []  # herald_lease_recoveries_total{kind="republished"}
    heir = queues.open(consumer="heir", claim_idle_s=0.3, on_redelivered=republished.append)
    assert await asyncio.wait_for(heir.get(), WAIT_S) == job
    assert republished == [1]
    (entry,) = await pending(queues, Platform.FACEBOOK)
    assert entry["consumer"] == b"heir"
    assert entry["times_delivered"] == 2
    await heir.ack(job)
    # Acks linger a moment to go with others (ack_linger_s, 50 ms), then land.
    await eventually(lambda: no_pending(queues, Platform.FACEBOOK), within_s=WAIT_S)


async def test_a_waiting_consumer_keeps_the_jobs_it_holds(queues):
    # It touches its entries every half idle time: none is ever idle enough to be taken.
    holder = queues.open(consumer="holder", claim_idle_s=1.5, block_s=0.05)
    (job,) = jobs_for(Platform.FACEBOOK, 1)
    await holder.put([job])
    assert await asyncio.wait_for(holder.get(), WAIT_S) == job
    waiting = asyncio.create_task(holder.get())  # keeps reading, and touching
    thief = queues.open(consumer="thief", claim_idle_s=1.5, block_s=0.05)
    stealing = await waiting_get(thief)  # takes over whatever is idle long enough
    idle_ms: list[int] = []

    async def seen_idle_three_times() -> bool:
        (entry,) = await pending(queues, Platform.FACEBOOK)
        idle_ms.append(entry["time_since_delivered"])
        return len(idle_ms) >= 3 and idle_ms[-1] < idle_ms[-2]  # touched since last look

    for _ in range(3):
        await eventually(seen_idle_three_times, within_s=WAIT_S, every_s=0.1)
    (entry,) = await pending(queues, Platform.FACEBOOK)
    assert entry["consumer"] == b"holder"
    assert entry["times_delivered"] == 1
    assert not stealing.done()
    await holder.close()
    await thief.close()
    for task in (waiting, stealing):
        with pytest.raises(QueueError):
            await asyncio.wait_for(task, WAIT_S)


async def test_two_consumers_of_one_group_never_get_the_same_job(queues):
    producer = queues.open(platforms=())
    consumers = [queues.open(read_count=3) for _ in range(2)]
    taken: list[list[Job]] = [[], []]

    tasks = [
        asyncio.create_task(take_until_closed(q, m)) for q, m in zip(consumers, taken, strict=True)
    ]
    made = jobs_for(Platform.FACEBOOK, 120)
    for start in range(0, len(made), 10):
        await producer.put(made[start : start + 10])
    await eventually(lambda: sum(map(len, taken)) >= len(made), within_s=WAIT_S)
    for queue in consumers:
        assert await queue.close() == []
    await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
    ids = [job.delivery.id for mine in taken for job in mine]
    assert sorted(ids) == sorted(job.delivery.id for job in made)  # each once, none twice
    assert await queues.client.xlen(queues.key(Platform.FACEBOOK)) == 0  # acked: deleted


async def test_a_stream_is_bounded(queues):
    producer = queues.open(platforms=(), max_len=50, bundle=1)
    for _ in range(6):
        await producer.put(jobs_for(Platform.LINKEDIN, 100))
    # MAXLEN ~ trims whole nodes of the stream: about max_len, never the 600 added.
    length = await queues.client.xlen(queues.key(Platform.LINKEDIN))
    assert 50 <= length <= 50 + 100


async def test_a_consumer_reads_only_its_platforms(queues):
    producer = queues.open(platforms=())
    facebook_only = queues.open(platforms=[Platform.FACEBOOK])
    (insta,), (face,) = jobs_for(Platform.INSTAGRAM, 1), jobs_for(Platform.FACEBOOK, 1)
    await producer.put([insta, face])
    assert await asyncio.wait_for(facebook_only.get(), WAIT_S) == face
    assert await facebook_only.close() == []  # it holds no other job
    instagram = queues.open(platforms=[Platform.INSTAGRAM])
    assert await asyncio.wait_for(instagram.get(), WAIT_S) == insta


async def test_a_consumer_reads_only_its_region(queues):
    eu = queues.open(region="eu")
    waiting = await waiting_get(eu)
    (job,) = jobs_for(Platform.FACEBOOK, 1)
    await queues.open(platforms=(), region="us").put([job])
    us = queues.open(region="us")
    assert await asyncio.wait_for(us.get(), WAIT_S) == job
    assert not waiting.done()
    assert await eu.close() == []
    with pytest.raises(QueueError):
        await asyncio.wait_for(waiting, WAIT_S)


async def test_a_message_that_holds_no_job_is_dropped_not_retried(queues):
    queue = queues.open()
    key = queues.key(Platform.FACEBOOK)
    await queue.refresh_depth()  # makes the streams and the group
    await queues.client.xadd(key, {"v": "1", "job": "not json"})
    await queues.client.xadd(key, {"v": "99", "job": "{}"})
    (job,) = jobs_for(Platform.FACEBOOK, 1)
    await queue.put([job])
    assert await asyncio.wait_for(queue.get(), WAIT_S) == job
    assert queue.undecodable == 2
    assert [e["message_id"] for e in await pending(queues, Platform.FACEBOOK)] == [
        (await queues.client.xrange(key))[0][0]
    ]  # only the job is pending: the other two were acked and deleted
    assert await queues.client.xlen(key) == 1


async def test_close_takes_back_the_jobs_it_added_that_no_one_read(queues):
    producer = queues.open(platforms=(), bundle=1)
    consumer = queues.open(read_count=1)
    made = jobs_for(Platform.YOUTUBE, 3)
    await producer.put(made)
    assert await asyncio.wait_for(consumer.get(), WAIT_S) == made[0]
    assert await producer.close() == made[1:]  # read by no one: handed back, deleted
    waiting = await waiting_get(consumer)  # nothing left for it
    await consumer.ack(made[0])
    await consumer.close()  # sends the acks still lingering
    assert await queues.client.xlen(queues.key(Platform.YOUTUBE)) == 0
    with pytest.raises(QueueError):
        await asyncio.wait_for(waiting, WAIT_S)


async def test_acks_go_together_and_land_within_their_linger(queues):
    worker = queues.open(read_count=10, ack_linger_s=0.2, ack_batch=5, bundle=1)
    made = jobs_for(Platform.FACEBOOK, 7)
    await worker.put(made)
    got = [await asyncio.wait_for(worker.get(), WAIT_S) for _ in made]
    for job in got[:4]:
        await worker.ack(job)
    assert len(await pending(queues, Platform.FACEBOOK)) == 7  # lingering, not sent yet
    await worker.ack(got[4])  # the fifth fills a pipeline: sent at once
    assert len(await pending(queues, Platform.FACEBOOK)) == 2
    for job in got[5:]:
        await worker.ack(job)
    await eventually(lambda: no_pending(queues, Platform.FACEBOOK), within_s=WAIT_S)


async def no_pending(queues, platform: Platform) -> bool:
    return await pending(queues, platform) == []


async def test_the_backlog_is_exported_per_platform_and_region(queues):
    producer = queues.open(platforms=(), region="eu", bundle=1)
    registry = CollectorRegistry()
    QueueBacklog(producer).register(registry)
    await producer.put(jobs_for(Platform.FACEBOOK, 3) + jobs_for(Platform.INSTAGRAM, 2))
    labels = {"platform": "facebook", "region": "eu"}
    assert registry.get_sample_value(BACKLOG_METRIC, labels) == 3
    worker = queues.open(platforms=[Platform.FACEBOOK], region="eu", read_count=1)
    job = await asyncio.wait_for(worker.get(), WAIT_S)
    await worker.ack(job)
    await producer.refresh_depth()  # a producer learns of reads when it next asks
    assert registry.get_sample_value(BACKLOG_METRIC, labels) == 2
    assert registry.get_sample_value(BACKLOG_METRIC, {**labels, "platform": "instagram"}) == 2


# -- several jobs an entry -----------------------------------------------------------------------
async def test_an_entry_is_acked_with_its_last_job_and_taken_over_whole_if_it_was_not(queues):
    """Redis knows entries, not jobs: one of several jobs not finished keeps its entry
    pending, and a consumer that dies with it leaves every one of its jobs to be taken over
    (those already finished find their claims gone there, as a redelivered job always does)."""
    made = jobs_for(Platform.FACEBOOK, 3)
    await queues.open(platforms=(), bundle=3).put(made)
    assert await queues.client.xlen(queues.key(Platform.FACEBOOK)) == 1
    dying_client = Redis.from_url(REDIS_URL)
    dying = queues.open(dying_client, ack_linger_s=0, claim_idle_s=0.2)
    held = [await asyncio.wait_for(dying.get(), WAIT_S) for _ in made]
    await dying.ack(held[0])
    await dying.ack(held[2])
    assert len(await pending(queues, Platform.FACEBOOK)) == 1  # the second is not finished
    await dying_client.aclose()  # the process dies: no more acks, no close
    queues.opened.remove(dying)
    with warnings.catch_warnings():
        # What a dead process leaves: a client never closed (its reading connection).
        warnings.simplefilter("ignore", ResourceWarning)
        del dying
        gc.collect()
    heir = queues.open(ack_linger_s=0, claim_idle_s=0.2)
    assert [await asyncio.wait_for(heir.get(), WAIT_S) for _ in made] == made
    for job in made:
        await heir.ack(job)
    await eventually(lambda: no_pending(queues, Platform.FACEBOOK), within_s=WAIT_S)
    assert await queues.client.xlen(queues.key(Platform.FACEBOOK)) == 0


async def test_an_entry_of_one_job_in_the_format_before_is_still_read(queues):
    (old,) = jobs_for(Platform.FACEBOOK, 1)
    consumer = queues.open()
    await consumer.refresh_depth()  # makes the group
    await queues.client.xadd(queues.key(Platform.FACEBOOK), {"v": "1", "job": encode_job(old)})
    assert await asyncio.wait_for(consumer.get(), WAIT_S) == old
    assert consumer.undecodable == 0


async def test_a_read_never_takes_more_than_read_count_jobs_after_a_quiet_spell(queues):
    """Reads count entries: after a quiet spell of one-job entries, a burst of full ones (the
    top of the hour) still gives one read no more than read_count jobs, and leaves the rest to
    the other workers."""
    fb = [Platform.FACEBOOK]
    worker = queues.open(platforms=fb, read_count=32, bundle=16, ack_linger_s=0)
    singles = queues.open(platforms=(), bundle=1)
    for _ in range(16):
        await singles.put(jobs_for(Platform.FACEBOOK, 1))
        await worker.ack(await asyncio.wait_for(worker.get(), WAIT_S))
    await eventually(lambda: no_pending(queues, Platform.FACEBOOK), within_s=WAIT_S)
    await queues.open(platforms=(), bundle=16).put(jobs_for(Platform.FACEBOOK, 16 * 10))
    await asyncio.wait_for(worker.get(), WAIT_S)
    assert len(await pending(queues, Platform.FACEBOOK)) == 2  # two entries of 16: 32 jobs
    other = queues.open(platforms=fb, read_count=32, bundle=16)
    await asyncio.wait_for(other.get(), WAIT_S)  # the rest is there for another worker
    assert len(await pending(queues, Platform.FACEBOOK)) == 4


async def test_an_unreachable_redis_raises_queue_unavailable():
    queue = RedisStreamQueue("redis://127.0.0.1:1/0", connect_timeout_s=1.0)
    with pytest.raises(QueueUnavailable):
        await queue.put(jobs_for(Platform.FACEBOOK, 1))
    with pytest.raises(QueueUnavailable):
        await asyncio.wait_for(queue.get(), WAIT_S)
    assert await queue.close() == []


async def test_a_read_of_several_streams_takes_no_more_than_read_count_in_all(queues):
    """Redis counts a read per stream: a worker reading four platforms splits read_count."""
    platforms = (Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN, Platform.YOUTUBE)
    worker = queues.open(read_count=64, bundle=16)
    producer = queues.open(platforms=(), bundle=16)
    for platform in platforms:
        await producer.put(jobs_for(platform, 16 * 10))
    await asyncio.wait_for(worker.get(), WAIT_S)
    assert [len(await pending(queues, p)) for p in platforms] == [1, 1, 1, 1]  # 64 jobs
