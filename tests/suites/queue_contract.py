"""The JobQueue contract: every queue (memory today; Redis Streams, RabbitMQ) passes these tests.

A tier provides its queues through a ``queue`` fixture (an open, empty queue, closed after the
test) parametrized over the kinds it runs on; ``tests.conftest.opened_queue`` builds each kind.
Jobs are compared by value: a queue that carries them over the wire hands back equal copies.
"""

from __future__ import annotations

import asyncio

import pytest

from herald.domain import Content, Delivery, Job, Platform, new_id, utcnow
from herald.errors import QueueError
from herald.testing import channel, eventually
from herald.types import JobQueue

WAIT_S = 5.0  # how long a test waits for a job it is owed


def jobs(count: int) -> list[Job]:
    """``count`` distinct jobs, each a claimed delivery with its channel and content."""
    ch = channel(Platform.FACEBOOK)
    made = []
    for n in range(count):
        delivery = Delivery(new_id("dlv"), new_id("post"), ch.id, ch.platform, utcnow())
        made.append(Job(delivery, ch, Content(text=f"job {n}"), claim_token=new_id("claim")))
    return made


async def take_until_closed(queue: JobQueue, mine: list[Job]) -> None:
    """Get and ack jobs into ``mine`` until the queue is closed: one worker's feed."""
    while True:
        try:
            job = await queue.get()
        except QueueError:
            return
        mine.append(job)
        await queue.ack(job)
        await asyncio.sleep(0)  # let the other getters take their turn


async def waiting_get(queue) -> asyncio.Task[Job]:
    """A ``get`` started on an empty queue, checked to be still waiting once the loop has
    had every chance to run it."""
    task = asyncio.create_task(queue.get())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done(), "get returned from an empty queue"
    return task


class QueueContract:
    """Runs on every queue a tier provides (its ``queue`` fixture)."""

    async def test_is_a_job_queue(self, queue):
        assert isinstance(queue, JobQueue)
        assert queue.depth() == 0

    async def test_jobs_come_out_in_the_order_they_were_put(self, queue):
        first, second = jobs(3), jobs(2)
        await queue.put(first)
        await queue.put(second)
        taken = [await asyncio.wait_for(queue.get(), WAIT_S) for _ in range(5)]
        assert taken == first + second

    async def test_get_waits_until_a_put(self, queue):
        task = await waiting_get(queue)
        (job,) = jobs(1)
        await queue.put([job])
        assert await asyncio.wait_for(task, WAIT_S) == job

    async def test_putting_no_jobs_wakes_no_getter(self, queue):
        task = await waiting_get(queue)
        await queue.put([])
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done()
        (job,) = jobs(1)
        await queue.put([job])
        assert await asyncio.wait_for(task, WAIT_S) == job

    async def test_depth_counts_the_jobs_waiting_to_be_taken(self, queue):
        await queue.put(jobs(3))
        assert queue.depth() == 3
        job = await asyncio.wait_for(queue.get(), WAIT_S)
        assert queue.depth() == 2
        await queue.ack(job)
        assert queue.depth() == 2  # an ack finishes a taken job: nothing waiting changes

    async def test_an_acked_job_is_never_handed_out_again(self, queue):
        a, b = jobs(2)
        await queue.put([a, b])
        taken = await asyncio.wait_for(queue.get(), WAIT_S)
        await queue.ack(taken)
        assert taken == a
        assert await asyncio.wait_for(queue.get(), WAIT_S) == b
        assert await queue.close() == []

    async def test_close_returns_the_jobs_never_taken_in_order(self, queue):
        made = jobs(4)
        await queue.put(made)
        taken = await asyncio.wait_for(queue.get(), WAIT_S)  # taken, never acked: not returned
        assert taken == made[0]
        assert await queue.close() == made[1:]
        assert queue.depth() == 0

    async def test_closing_again_returns_nothing_more(self, queue):
        await queue.put(jobs(2))
        assert len(await queue.close()) == 2
        assert await queue.close() == []

    async def test_close_makes_every_waiting_get_raise(self, queue):
        waiting = [await waiting_get(queue) for _ in range(3)]
        assert await queue.close() == []
        for task in waiting:
            with pytest.raises(QueueError):
                await asyncio.wait_for(task, WAIT_S)

    async def test_get_after_close_raises_even_if_jobs_were_left(self, queue):
        await queue.put(jobs(2))
        assert len(await queue.close()) == 2
        with pytest.raises(QueueError):
            await asyncio.wait_for(queue.get(), WAIT_S)

    async def test_put_after_close_raises_and_keeps_nothing(self, queue):
        await queue.close()
        with pytest.raises(QueueError):
            await queue.put(jobs(1))
        assert queue.depth() == 0

    async def test_waiting_getters_each_take_a_different_job(self, queue):
        waiting = [await waiting_get(queue) for _ in range(3)]
        made = jobs(3)
        await queue.put(made)
        taken = await asyncio.wait_for(asyncio.gather(*waiting), WAIT_S)
        assert sorted(j.delivery.id for j in taken) == sorted(j.delivery.id for j in made)

    async def test_several_getters_take_every_job_once(self, queue):
        made = jobs(60)
        taken: list[list[Job]] = [[] for _ in range(4)]

        getters = [asyncio.create_task(take_until_closed(queue, mine)) for mine in taken]
        for start in range(0, len(made), 7):
            await queue.put(made[start : start + 7])
        everything = [j.delivery.id for j in made]

        def all_taken() -> bool:
            return sum(len(mine) for mine in taken) >= len(made)

        await eventually(all_taken, within_s=WAIT_S)
        assert await queue.close() == []
        await asyncio.wait_for(asyncio.gather(*getters), WAIT_S)
        got = [j.delivery.id for mine in taken for j in mine]
        assert sorted(got) == sorted(everything)  # every job once, none twice
        for mine in taken:  # each getter saw its jobs in the order they were put
            ids = [j.delivery.id for j in mine]
            assert ids == sorted(ids, key=everything.index)
