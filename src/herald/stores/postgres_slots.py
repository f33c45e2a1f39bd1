"""Posting-slot locks across every process on one PostgreSQL database (see
:mod:`herald.stores.slot_locks`): one session advisory lock per channel, keyed by the schema
and the channel id.

The locks live on a pool of their own (up to ``pool_size`` connections, opened as needed): a
request holding a channel's lock runs its search and its write on the store's main pool, so
requests waiting for locks can never take the connections the holder needs to finish. A
connection is unlocked before it goes back (and a broken one is closed, which unlocks it on
the server), so no lock outlives its holder, even when a process dies.

Session locks need a session: behind a pooler in transaction mode (PgBouncer's
``pool_mode = transaction``) point Herald's URL at PostgreSQL itself, as for ``LISTEN``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from herald.errors import StoreError
from herald.stores.postgres_conn import translated
from herald.stores.slot_locks import KeyedLocks

__all__ = ["AdvisorySlotLocks"]

_LOCK = "SELECT pg_advisory_lock(hashtextextended($1, 0))"
_UNLOCK_ALL = "SELECT pg_advisory_unlock_all()"
_UNLOCK_TIMEOUT_S = 5.0

log = logging.getLogger("herald.store")


class AdvisorySlotLocks:
    def __init__(self, url: str, schema: str, *, pool_size: int = 4) -> None:
        self._url = url
        self._schema = schema
        self._pool_size = pool_size
        self._pool: Any = None
        self._local = KeyedLocks()

    @asynccontextmanager
    async def hold(self, channel_ids: Iterable[str]) -> AsyncIterator[None]:
        ordered = sorted(set(channel_ids))
        # One task per channel and process queues on the server; the rest queue here.
        if self._pool is None:
            raise StoreError("the PostgreSQL store is not open")
        async with self._local.hold(ordered):
            with translated():
                conn = await self._pool.acquire()
            try:
                with translated():
                    for channel_id in ordered:  # sorted everywhere: no lock cycle
                        await conn.execute(_LOCK, f"herald.slots:{self._schema}:{channel_id}")
                yield
            finally:
                await self._let_go(conn)

    async def _let_go(self, conn: Any) -> None:
        """Unlock and give the connection back. Raises nothing but a cancellation: the
        holder's write may have committed, and its caller must hear of that, not of a lock
        that could not be undone. A session that cannot unlock is ended, which unlocks."""
        try:
            await asyncio.wait_for(conn.execute(_UNLOCK_ALL), _UNLOCK_TIMEOUT_S)
        except asyncio.CancelledError:
            _end(conn)
            raise
        except Exception as exc:
            log.warning("store.slot_unlock_failed", extra={"error": repr(exc)})
            _end(conn)
        finally:
            with contextlib.suppress(Exception):
                await self._pool.release(conn)

    async def open(self) -> None:
        with translated():
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=0,  # no connection until a request asks for a free slot
                max_size=self._pool_size,
                server_settings={"application_name": "herald-slots"},
            )

    async def close(self, grace_s: float = 10.0) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), grace_s)
        except (Exception, TimeoutError):
            pool.terminate()  # a request still waiting for a lock: its session ends


def _end(conn: Any) -> None:
    # A session lost already is detached from its pool proxy (asyncpg refuses to terminate
    # it again): either way, the server has let go of its locks.
    with contextlib.suppress(Exception):
        conn.terminate()
