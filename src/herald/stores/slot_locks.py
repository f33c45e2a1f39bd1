"""Posting-slot locks: a next-free-slot search and the write that follows run under the lock of
every channel they touch, so two requests never get one slot (:meth:`Catalog.slot_lock`).

The search reads the channel's busy times, picks the first free slot and writes a delivery
there; two requests doing that at once (two API processes, or two tasks of one) would both read
the slot as free. Holding the channels' locks from the read to the write makes the pair atomic
without a constraint on deliveries, whose rule ("no live delivery holds the instant") is a
query, not a unique key.

Each store holds the locks where its writers meet:

- in process (:class:`KeyedLocks`): one ``asyncio.Lock`` per channel, taken in sorted order, so
  two requests over overlapping channel sets cannot deadlock; every store takes these first, so
  at most one task per channel and process waits on the cross-process lock below;
- SQLite (:class:`FileLock`): ``flock`` on ``<db>.slots.lock``, one for the file (SQLite has one
  writer at a time anyway), released by the OS if the process dies;
- PostgreSQL (:mod:`herald.stores.postgres_slots`): session advisory locks, one per channel.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

__all__ = ["FileLock", "KeyedLocks", "blocking_acquire"]


class KeyedLocks:
    """One ``asyncio.Lock`` per key, created on first use and dropped when nobody holds or
    waits for it (channel ids are unbounded; the map stays as small as the requests in flight)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, keys: Iterable[str]) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys)):
                await stack.enter_async_context(self._one(key))
            yield

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def _one(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


async def blocking_acquire(acquire: Callable[[], None], release: Callable[[], None]) -> None:
    """Run a blocking ``acquire`` in a thread. If the waiting task is cancelled, the thread
    cannot be: the lock it takes later is released at once instead of leaking."""
    taking = asyncio.ensure_future(asyncio.to_thread(acquire))
    try:
        await asyncio.shield(taking)
    except asyncio.CancelledError:

        def undo(done: asyncio.Future[None]) -> None:
            if not done.cancelled() and done.exception() is None:
                release()

        taking.add_done_callback(undo)
        raise


class FileLock:
    """An exclusive ``flock`` on one file, for the processes sharing a SQLite database.

    The descriptor is opened once and kept: ``flock`` locks belong to the open file, so the
    callers of one process must take turns through an ``asyncio.Lock`` before it (the store
    does, through :class:`KeyedLocks` on one key)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def _descriptor(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        fd = self._descriptor()
        await blocking_acquire(
            lambda: fcntl.flock(fd, fcntl.LOCK_EX), lambda: fcntl.flock(fd, fcntl.LOCK_UN)
        )
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
