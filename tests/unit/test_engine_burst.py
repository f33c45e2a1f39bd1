"""Burst mode stops only on a quiet read: nothing held, nothing due, and nothing claimed and
finished while the store answered.

A slow read (a loaded machine, the SQLite reader thread) could see a delivery claimed, so not
due, while the job ran and handed the delivery back due again; the count of jobs held was 0
again by the time the answer came, and the engine stopped with a delivery due in half a
second. The test holds the read open while a job comes and goes.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Unpack

from herald.config import EngineSettings, Settings
from herald.domain import ClaimBatch, Content, Delivery, Job, Platform, new_id, utcnow
from herald.states import DeliveryState
from herald.stores.contract import ClaimRequest
from herald.stores.memory import MemoryStore
from herald.testing import FakeConnector, FakePlatform, channel, memory_engine, new_post


class _SlowRead(MemoryStore):
    """next_due_at answers "nothing due" the first time, once let go; later, "due now"."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.let_go = asyncio.Event()
        self.reads = 0
        self.read_again = asyncio.Event()

    async def next_due_at(self) -> datetime | None:
        self.reads += 1
        if self.reads == 1:
            self.reading.set()
            await self.let_go.wait()
            return None  # what it saw: the delivery claimed
        self.read_again.set()
        return utcnow()  # handed back, due again


async def test_burst_mode_reads_again_when_work_came_and_went_during_a_read():
    store = _SlowRead()
    engine = memory_engine(
        {Platform.FACEBOOK: FakeConnector(Platform.FACEBOOK, FakePlatform())}, store=store
    )
    watcher = asyncio.create_task(engine._stop_when_idle(60.0))
    await asyncio.wait_for(store.reading.wait(), 5)
    ch = channel(Platform.FACEBOOK)
    job = Job(
        Delivery(new_id("dlv"), new_id("post"), ch.id, ch.platform, utcnow()),
        ch,
        Content(text="t"),
        claim_token=new_id("claim"),
    )
    engine._in_flight.add([job])  # claimed and finished while the store answered
    engine._in_flight.done(job)
    store.let_go.set()
    await asyncio.wait_for(store.read_again.wait(), 5)
    assert not engine._stopping.is_set()
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)


class _ClaimAnswersLate(MemoryStore):
    """claim_due takes the claim at once but answers only after a read of next_due_at that
    saw it taken (or after a second): the read finds nothing due while the dispatcher does
    not hold the job yet."""

    def __init__(self) -> None:
        super().__init__()
        self.claimed = asyncio.Event()
        self.read_after = asyncio.Event()

    async def claim_due(self, **asked: Unpack[ClaimRequest]) -> ClaimBatch:
        batch = await super().claim_due(**asked)
        if batch.jobs and not self.claimed.is_set():
            self.claimed.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.read_after.wait(), 1.0)
        return batch

    async def next_due_at(self) -> datetime | None:
        due = await super().next_due_at()
        if self.claimed.is_set():
            self.read_after.set()
        return due


async def test_burst_mode_does_not_stop_while_a_claim_is_being_taken():
    """A claim taken in the store but not yet counted as held is work: the engine used to stop
    on a read made in between, and released the claim unsent (seen once in CI)."""
    store = _ClaimAnswersLate()
    world, ch = FakePlatform(), channel(Platform.FACEBOOK)
    await store.add_channels([ch])
    await store.add_posts([new_post([ch])])
    settings = Settings(engine=EngineSettings(idle_recheck_s=0.05))
    engine = memory_engine(
        {Platform.FACEBOOK: FakeConnector(Platform.FACEBOOK, world)}, store=store, settings=settings
    )
    await asyncio.wait_for(engine.run(burst=True), 20)
    assert store.claimed.is_set()
    assert world.published() == 1
    assert [d.state for d in await store.list_deliveries()] == [DeliveryState.PUBLISHED]
