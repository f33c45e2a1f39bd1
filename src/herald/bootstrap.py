"""Builds the running pieces from configuration: the store for a URL, the engine around it.

Kept apart from the CLI so tests, the demo and the API server start Herald the same way.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from herald.config import Settings
from herald.engine import Engine
from herald.errors import ConfigError
from herald.platforms import build_connectors
from herald.stores.memory import MemoryStore
from herald.stores.sqlite import SQLiteStore, sqlite_path
from herald.types import Store

__all__ = ["EngineLock", "open_store", "running_engine"]


def open_store(settings: Settings) -> Store:
    """An unopened store for ``settings.database_url``."""
    url = settings.database_url
    if url.startswith("sqlite://"):
        return SQLiteStore(sqlite_path(url), synchronous=settings.engine.sqlite_synchronous)
    if url.startswith("memory://"):
        return MemoryStore()
    raise ConfigError(f"no store for {url.split(':', 1)[0]!r} URLs in this build")


class EngineLock:
    """Only one engine may run on an embedded database: a second one would double-claim.

    An advisory lock on ``<db>.engine.lock``; the OS drops it if the process dies, so a crash
    never leaves a stale lock behind.
    """

    def __init__(self, database_path: str) -> None:
        self.path = Path(f"{database_path}.engine.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ConfigError(
                f"another Herald engine is already running on {self.path.with_suffix('')}"
            ) from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


@asynccontextmanager
async def running_engine(settings: Settings, store: Store | None = None) -> AsyncIterator[Engine]:
    """An engine on an opened store with real connectors; everything closed on exit."""
    own_store = store is None
    store = store or open_store(settings)
    lock = EngineLock(store.path) if isinstance(store, SQLiteStore) else None
    if lock is not None:
        lock.acquire()
    connectors = build_connectors(settings)
    try:
        if own_store:
            await store.open()
        yield Engine(settings, store, connectors, exclusive=lock is not None)
    finally:
        for connector in connectors.values():
            await connector.aclose()
        if own_store:
            await store.close()
        if lock is not None:
            lock.release()
