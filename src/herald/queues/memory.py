"""The in-process queue: an asyncio FIFO between the dispatcher and the workers.

It holds nothing durable: every job in it is a claimed delivery under a lease in the store, so
a crash loses no work, it only delays it until the lease runs out.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection, Sequence

from herald.domain import Job
from herald.errors import QueueError

__all__ = ["MemoryQueue"]


class MemoryQueue:
    """Implements :class:`herald.types.JobQueue` inside one process."""

    def __init__(self) -> None:
        self._items: deque[Job] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    async def put(self, jobs: Sequence[Job]) -> None:
        if self._closed:
            raise QueueError("the queue is closed")
        self._items.extend(jobs)
        if self._items:
            self._ready.set()

    async def get(self) -> Job:
        while not self._items:
            if self._closed:
                raise QueueError("the queue is closed")
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    async def ack(self, job: Job) -> None:
        return None

    def depth(self) -> int:
        return len(self._items)

    async def refresh_depth(self) -> None:
        """Always current: nothing to ask."""

    def unread(self) -> Collection[Job]:
        return list(self._items)

    async def close(self) -> list[Job]:
        self._closed = True
        left = list(self._items)
        self._items.clear()
        self._ready.set()
        return left
