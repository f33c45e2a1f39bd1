"""The intake of a worker process: it adopts the claims it takes off the queue, drops the
offers whose claims are gone or belong to another region, and holds at most ``max_held``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

from herald.config import EngineSettings
from herald.domain import Job, Platform, utcnow
from herald.engine.dispatcher import InFlight
from herald.engine.health import StoreHealth
from herald.engine.intake import Adoption, Intake
from herald.engine.metrics import Metrics
from herald.queues.memory import MemoryQueue
from herald.states import DeliveryState
from herald.stores.memory import MemoryStore
from herald.testing import channel, eventually, new_post
from herald.timing import SystemClock
from tests.suites.store_contract import claim


class AckedQueue(MemoryQueue):
    def __init__(self) -> None:
        super().__init__()
        self.acked: list[Job] = []

    async def ack(self, job: Job) -> None:
        self.acked.append(job)


async def claimed(store: MemoryStore, channels, count: int = 1) -> list[Job]:
    await store.add_channels(channels)
    await store.add_posts([new_post(channels) for _ in range(count)])
    batch = await claim(store, lease=timedelta(seconds=5), engine_id="eng_dispatcher")
    return batch.jobs


def intake_of(store, queue, in_flight, *, max_held: int = 10) -> Intake:
    health = StoreHealth(EngineSettings(), Metrics(), SystemClock())
    adoption = Adoption(
        store, "eng_worker", "eu", (Platform.FACEBOOK,), max_held=max_held, lease_s=300.0
    )
    return Intake(queue, in_flight, health, retry_s=0.1, metrics=Metrics(), adoption=adoption)


async def test_a_worker_adopts_its_jobs_and_drops_the_others():
    store, queue, in_flight = MemoryStore(), AckedQueue(), InFlight()
    ours = await claimed(store, [channel(region="eu")], 2)
    elsewhere = await claimed(store, [channel(region="us")])
    (stale,) = await claimed(store, [channel(region="eu")])
    intake = intake_of(store, queue, in_flight)
    await store.adopt([(stale.delivery.id, stale.claim_token)], engine_id="x", lease_until=utcnow())
    submitted: list[Job] = []
    await queue.put([*ours, *elsewhere, stale])
    running = asyncio.create_task(intake.run(submitted.append))
    await eventually(lambda: len(queue.acked) == 2, within_s=5)
    assert {j.delivery.id for j in submitted} == {j.delivery.id for j in ours}
    # Adopted under a token of the worker's own: the dispatcher's writes nothing any more.
    assert {j.claim_token for j in submitted} != {j.claim_token for j in ours}
    assert in_flight.count == 2
    assert intake.message_of(submitted[0]) in ours  # what its ack names
    assert {j.delivery.id for j in queue.acked} == {elsewhere[0].delivery.id, stale.delivery.id}
    assert intake.stale == 2
    # The job of another region is still the dispatcher's claim: it lapses and is routed again.
    got = await store.get_delivery(elsewhere[0].delivery.id)
    assert got.state is DeliveryState.CLAIMED
    await queue.close()
    await running


async def test_a_worker_holds_no_more_than_max_held_and_refills_by_halves():
    store, queue, in_flight = MemoryStore(), AckedQueue(), InFlight()
    jobs = await claimed(store, [channel(region="eu")], 8)
    intake = intake_of(store, queue, in_flight, max_held=4)
    submitted: list[Job] = []
    await queue.put(jobs)
    running = asyncio.create_task(intake.run(submitted.append))
    await eventually(lambda: len(submitted) == 4, within_s=5)
    await asyncio.sleep(0.05)
    assert len(submitted) == 4
    assert queue.depth() == 4  # the rest waits in the queue
    in_flight.done(submitted[0])  # one finished: no more yet (half of what it holds)
    await asyncio.sleep(0.05)
    assert len(submitted) == 4
    in_flight.done(submitted[1])  # half done: as much again, adopted at once
    await eventually(lambda: len(submitted) == 6, within_s=5)
    assert queue.depth() == 2
    intake.close()  # what the engine does at a stop, full or not
    left = await queue.close()
    await asyncio.wait_for(running, 5)
    assert len(left) == 2


async def test_two_copies_of_one_message_in_a_batch_run_the_delivery_once():
    # A broker that redelivers (RabbitMQ after a connection loss) can hand the same message
    # out twice before the first copy is adopted: both carry the token the store still holds.
    store, queue, in_flight = MemoryStore(), AckedQueue(), InFlight()
    (job,) = await claimed(store, [channel(region="eu")])
    intake = intake_of(store, queue, in_flight)
    submitted: list[Job] = []
    await queue.put([job, replace(job)])  # two decodings of one message: equal, not the same
    running = asyncio.create_task(intake.run(submitted.append))
    await eventually(lambda: len(queue.acked) == 1, within_s=5)
    await asyncio.sleep(0.05)
    assert [j.delivery.id for j in submitted] == [job.delivery.id]
    assert in_flight.count == 1
    intake.close()
    await queue.close()
    await asyncio.wait_for(running, 5)
