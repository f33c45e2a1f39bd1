"""Wakes a dispatcher when another process adds work: ``LISTEN`` on the schema's channel.

The store sends ``NOTIFY`` in the transactions that add posts or make deliveries claimable
again (see :meth:`herald.stores.postgres.PostgresStore.listen`); PostgreSQL delivers it at
commit. A listener holds one connection of its own, outside the pool. If that connection
drops, it reconnects with growing pauses and then calls ``notify(None)``, since notifications
sent meanwhile are lost. The dispatcher's ``idle_recheck_s`` stays the backstop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from herald.errors import StoreError
from herald.stores.postgres_conn import Database, translated

__all__ = ["DueListener"]

log = logging.getLogger("herald.store")

_CLOSE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class DueListener:
    def __init__(
        self,
        db: Database,
        channel: str,
        notify: Callable[[datetime | None], None],
        *,
        retry_s: Sequence[float] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
    ) -> None:
        self.channel = channel
        self._db = db  # its URL and session settings, for a connection outside its pool
        self._notify = notify
        self._retry_s = retry_s
        self._conn: Any = None
        self._dropped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0

    async def start(self) -> None:
        """Connect and listen; raise :class:`StoreError` if that fails."""
        self._conn = await self._connect()
        self._task = asyncio.create_task(self._watch(), name="herald-pg-listen")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close(timeout=5)
            except _CLOSE_ERRORS:
                conn.terminate()  # already gone or hung: drop it without a goodbye

    async def _connect(self) -> Any:
        with translated():
            conn = await asyncpg.connect(self._db.url, server_settings=self._db.server_settings())
            try:
                await conn.add_listener(self.channel, self._received)
            except BaseException:
                conn.terminate()
                raise
        conn.add_termination_listener(self._lost)
        return conn

    def _received(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        at: datetime | None = None
        if payload:
            try:
                at = datetime.fromisoformat(payload)
            except ValueError:
                at = None  # not ours to judge: wake now, the store knows what is due
        self._notify(at)

    def _lost(self, _conn: Any) -> None:
        self._dropped.set()

    async def _watch(self) -> None:
        while True:
            await self._dropped.wait()
            self._dropped.clear()
            log.warning("store.listen_lost", extra={"channel": self.channel})
            await self._reconnect()

    async def _reconnect(self) -> None:
        pauses = itertools.chain(self._retry_s, itertools.repeat(self._retry_s[-1]))
        for pause_s in pauses:
            try:
                self._conn = await self._connect()
            except StoreError as exc:
                log.warning(
                    "store.listen_retry",
                    extra={"channel": self.channel, "error": str(exc), "delay_s": pause_s},
                )
                await asyncio.sleep(pause_s)
                continue
            self.reconnects += 1
            self._notify(None)  # notifications sent while we were away are lost
            return
