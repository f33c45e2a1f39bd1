"""A lane admits one job at a time, or (``together``) every ready job a free slot can take."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from herald.engine.lane import Lane, Slot


@dataclass
class Recorder:
    """Admits every job (``refuse``: settles those, ``fail``: raises), and counts how many
    admissions were under way at once."""

    refuse: set[int] = field(default_factory=set)
    fail: set[int] = field(default_factory=set)
    admitting: int = 0
    most_at_once: int = 0
    ran: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0

    async def admit(self, job: int) -> bool:
        self.admitting += 1
        self.most_at_once = max(self.most_at_once, self.admitting)
        await asyncio.sleep(0.001)  # a round trip
        self.admitting -= 1
        if job in self.fail:
            raise RuntimeError("the store refused a write")
        if job in self.refuse:
            self._settled()
        return job not in self.refuse

    async def execute(self, job: int, slot: Slot) -> None:
        await asyncio.sleep(0.002)
        slot.release()
        self.ran.append(job)
        self._settled()

    async def on_failure(self, job: int, exc: Exception) -> None:
        self.failed.append(job)
        self._settled()

    def _settled(self) -> None:
        self.expected -= 1
        if self.expected == 0:
            self.done.set()


async def run_lane(recorder: Recorder, jobs: list[int], *, together: bool) -> Lane:
    lane = Lane("test", 4, recorder.admit, recorder.execute, recorder.on_failure, together=together)
    recorder.expected = len(jobs)
    for job in jobs:
        lane.submit(job)  # type: ignore[arg-type]
    task = asyncio.create_task(lane.run())
    await asyncio.wait_for(recorder.done.wait(), 5)
    lane.stop()
    await task
    return lane


async def test_one_at_a_time_by_default():
    recorder = Recorder()
    await run_lane(recorder, list(range(10)), together=False)
    assert sorted(recorder.ran) == list(range(10))
    assert recorder.most_at_once == 1


async def test_together_admits_as_many_ready_jobs_as_there_are_free_slots():
    recorder = Recorder()
    await run_lane(recorder, list(range(10)), together=True)
    assert sorted(recorder.ran) == list(range(10))
    assert recorder.most_at_once == 4  # the lane's concurrency, never more


async def test_together_one_job_s_refusal_or_failure_is_its_own():
    recorder = Recorder(refuse={2}, fail={5})
    lane = await run_lane(recorder, list(range(8)), together=True)
    assert sorted(recorder.ran) == [0, 1, 3, 4, 6, 7]
    assert recorder.failed == [5]
    # Every slot came back: four more jobs can be admitted at once.
    assert lane._slots._value == 4


async def test_a_job_whose_admission_is_cancelled_is_back_in_line_for_the_drain():
    """A drain past its grace cancels a lane stuck admitting: its jobs are handed back by the
    drain rather than left to their leases."""
    stuck = asyncio.Event()

    async def admit(job: int) -> bool:
        stuck.set()
        await asyncio.Event().wait()  # the limiter never answers
        return True

    async def never(job: int, slot: Slot) -> None:
        raise AssertionError("nothing is admitted")

    async def failed(job: int, exc: Exception) -> None:
        raise AssertionError("nothing fails")

    lane = Lane("test", 4, admit, never, failed, together=True)
    for job in (1, 2, 3):
        lane.submit(job)  # type: ignore[arg-type]
    task = asyncio.create_task(lane.run())
    await asyncio.wait_for(stuck.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(job for job, _ in lane.take_waiting()) == [1, 2, 3]
    assert lane._slots._value == 4


async def test_a_granted_job_goes_at_once_whatever_the_others_admitted_with_it_do():
    """Sent when granted, not when the slowest admission of its batch is answered; and a
    cancel then leaves it running, never lost between the two."""
    slow = asyncio.Event()
    sent: list[int] = []

    async def admit(job: int) -> bool:
        if job == 2:
            await asyncio.Event().wait()  # its admission never ends
        return True

    async def execute(job: int, slot: Slot) -> None:
        sent.append(job)
        slow.set()
        slot.release()

    async def failed(job: int, exc: Exception) -> None:
        raise AssertionError("nothing fails")

    lane = Lane("test", 4, admit, execute, failed, together=True)
    lane.submit(1)  # type: ignore[arg-type]
    lane.submit(2)  # type: ignore[arg-type]
    task = asyncio.create_task(lane.run())
    await asyncio.wait_for(slow.wait(), 5)  # sent while job 2 is still being admitted
    assert sent == [1]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.gather(*lane.tasks)
    assert [job for job, _ in lane.take_waiting()] == [2]  # handed back by a drain
    assert lane._slots._value == 4
