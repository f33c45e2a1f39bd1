"""Posting-slot locks: a next-free-slot search and the write that follows run under the lock of
every channel they touch, so two requests never get one slot (:meth:`Catalog.slot_lock`).

The search reads the channel's busy times, picks the first free slot and writes a delivery
there; two requests doing that at once (two API processes, or two tasks of one) would both read
the slot as free. Holding the channels' locks from the read to the write makes the pair atomic
without a constraint on deliveries, whose rule ("no live delivery holds the instant") is a
query, not a unique key.

Each store holds the locks where its writers meet:

- in process (:class:`KeyedLocks`): one ``asyncio.Lock`` per channel, taken in sorted order, so
  two requests over overlapping channel sets cannot deadlock; the memory and PostgreSQL stores
  take these first, so at most one task per channel and process waits on the server;
- SQLite (:class:`FileLock`): ``flock`` on ``<db>.slots.lock``, one for the file (SQLite has one
  writer at a time anyway), behind one ``asyncio.Lock`` of the store's, released by the OS if
  the process dies;
- PostgreSQL (:mod:`herald.stores.postgres_slots`): session advisory locks, one per channel.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

__all__ = ["FileLock", "KeyedLocks"]


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


class FileLock:
    """An exclusive ``flock`` on one file, for the processes sharing a SQLite database.

    Each hold opens a descriptor of its own: ``flock`` locks belong to the open file, so a
    wait that was cancelled (its thread still blocked in ``flock``) and the next holder's wait
    must not share one, or the first one's undo would unlock the second's lock."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # its directory: the store's
        taking = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
        try:
            await asyncio.shield(taking)
        except asyncio.CancelledError:
            # The thread cannot be cancelled: once it is done with ``fd``, closing it lets go
            # of the lock it may have taken meanwhile.
            taking.add_done_callback(lambda _: os.close(fd))
            raise
        except BaseException:
            os.close(fd)
            raise
        try:
            yield
        finally:
            os.close(fd)  # drops the lock
