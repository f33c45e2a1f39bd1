"""A lane: one platform's share of the workers.

A job enters a lane ready to go, or deferred until a rate limit lets it through. The lane takes
a concurrency slot *first*, then asks the limiter, and sends at once when granted: a grant is
never spent while waiting for a slot, so requests reach the platform in the order and at the
times the limiter counted them. When the limiter says wait, the slot is given back and the job
sleeps on a timer heap (short waits) or goes back to the store (long ones): a waiting delivery
never holds a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from herald.domain import Job
from herald.wakeup import wait_first

__all__ = ["Lane", "Slot"]


class Slot:
    """One of a lane's concurrency slots; release is idempotent."""

    __slots__ = ("_released", "_semaphore")

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._semaphore.release()


#: Decides whether a job may go now: returns True (go), or has deferred or finished it.
Admit = Callable[[Job], Awaitable[bool]]
#: Runs an admitted job; must release the slot once the platform call is over.
Execute = Callable[[Job, Slot], Coroutine[Any, Any, None]]
#: Lets go of a job whose admission raised.
Failed = Callable[[Job, Exception], Awaitable[None]]


class Lane:
    def __init__(
        self,
        name: str,
        concurrency: int,
        admit: Admit,
        execute: Execute,
        failed: Failed,
        *,
        together: bool = False,
    ) -> None:
        self.name = name
        # Admit the ready jobs that free slots can take together, concurrently: a shared
        # limiter then sends their admissions in one round trip (herald.limits.batching).
        self._together = together
        self._admit = admit
        self._execute = execute
        self._failed = failed
        self._slots = asyncio.Semaphore(concurrency)
        self._ready: deque[Job] = deque()
        self._timers: list[tuple[float, int, Job]] = []
        # The jobs on the timer heap by ticket; one woken early (wake_one) leaves its timer
        # behind, skipped when it fires.
        self._deferred_jobs: dict[int, Job] = {}
        self._seq = itertools.count()
        self._signal = asyncio.Event()
        self._stopping = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, job: Job) -> None:
        self._ready.append(job)
        self._signal.set()

    def defer(self, job: Job, delay_s: float) -> int:
        """Run ``job`` again after ``delay_s``; return its ticket for :meth:`wake_one`."""
        loop = asyncio.get_running_loop()
        ticket = next(self._seq)
        heapq.heappush(self._timers, (loop.time() + delay_s, ticket, job))
        self._deferred_jobs[ticket] = job
        self._signal.set()
        return ticket

    def wake(self) -> None:
        """Let every deferred job try again now (a pause may have ended early): those whose
        wait still stands are deferred again by their admission."""
        self._ready.extend(job for _, _, job in self._deferred())
        self._timers.clear()
        self._deferred_jobs.clear()
        self._signal.set()

    def wake_one(self, ticket: int) -> bool:
        """Let the job deferred with ``ticket`` try again now (a concurrency slot it waits for
        was freed); False if it is no longer waiting on its timer."""
        job = self._deferred_jobs.pop(ticket, None)
        if job is None:
            return False
        self._ready.append(job)
        self._signal.set()
        return True

    def _deferred(self) -> list[tuple[float, int, Job]]:
        return [timer for timer in sorted(self._timers) if timer[1] in self._deferred_jobs]

    def waiting(self) -> int:
        return len(self._ready) + len(self._deferred_jobs)

    def stop(self) -> None:
        self._stopping.set()

    def take_waiting(self) -> list[tuple[Job, float]]:
        """Empty the lane: each waiting job with the delay after which it was to run."""
        now = asyncio.get_running_loop().time()
        left = [(job, 0.0) for job in self._ready]
        left += [(job, max(0.0, at - now)) for at, _, job in self._deferred()]
        self._ready.clear()
        self._timers.clear()
        self._deferred_jobs.clear()
        return left

    async def run(self) -> None:
        while (job := await self._next()) is not None:
            slot = await self._slot()
            if slot is None:
                self._ready.appendleft(job)  # stopping: drain() hands it back unsent
                return
            batch = [(job, slot)]
            if self._together:
                batch += await self._more_ready()
            if len(batch) == 1:
                await self._admit_one(job, slot)
            else:
                await asyncio.gather(*(self._admit_one(j, s) for j, s in batch))

    async def _more_ready(self) -> list[tuple[Job, Slot]]:
        """The ready jobs that a free slot can take at once, each with its slot."""
        more = []
        while self._ready and not self._slots.locked() and not self._stopping.is_set():
            await self._slots.acquire()  # free: it does not wait
            more.append((self._ready.popleft(), Slot(self._slots)))
        return more

    async def _admit_one(self, job: Job, slot: Slot) -> None:
        """Admit ``job`` and, granted, send it at once in ``slot`` (not once the others
        admitted with it are answered: a grant is spent when it is counted). Otherwise the
        slot is given back: the job was deferred, settled, or let go (its admission failed)."""
        try:
            go = await self._admit(job)
        except Exception as exc:
            # One job's trouble (the store refused a write, say) must not stop the lane:
            # the job is let go, and its lease brings the delivery back.
            slot.release()
            await self._failed(job, exc)
            return
        except BaseException:
            # Cancelled (a drain past its grace): back in line, so the drain hands it back
            # rather than leave it to its lease.
            slot.release()
            self._ready.appendleft(job)
            raise
        if not go:
            slot.release()
            return
        task = asyncio.create_task(self._execute(job, slot), name=f"herald-{self.name}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done(slot))

    async def _slot(self) -> Slot | None:
        """A free concurrency slot, or None once the lane is stopping (waiting for one must
        not outlast a shutdown, nor start a request after it began)."""
        if self._stopping.is_set():
            return None
        acquire = asyncio.ensure_future(self._slots.acquire())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({acquire, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not acquire.done():
                acquire.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquire
        got = acquire.done() and not acquire.cancelled()
        if got and self._stopping.is_set():
            self._slots.release()
            return None
        return Slot(self._slots) if got else None

    def _task_done(self, slot: Slot) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            slot.release()
            self.tasks.discard(task)

        return done

    async def _next(self) -> Job | None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            now = loop.time()
            while self._timers and self._timers[0][0] <= now:
                _, ticket, job = heapq.heappop(self._timers)
                if self._deferred_jobs.pop(ticket, None) is not None:  # else woken already
                    self._ready.append(job)
            if self._ready:
                return self._ready.popleft()
            timeout = self._timers[0][0] - now if self._timers else None
            self._signal.clear()
            await wait_first(self._signal, self._stopping, within_s=timeout)
        return None
