"""Group commit: state changes from many workers written in one transaction.

A worker hands a :class:`Transition` over and awaits its commit. While one batch is being
written, the next ones gather; the next write takes them all. Under load one fsync covers
hundreds of deliveries; when idle a single change is written at once (no timer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from herald.domain import Transition
from herald.errors import StoreError
from herald.types import EngineStore

__all__ = ["TransitionWriter"]

log = logging.getLogger("herald.writer")


class TransitionWriter:
    def __init__(
        self,
        store: EngineStore,
        *,
        max_batch: int = 1000,
        retry_delays_s: Sequence[float] = (0.05, 0.2, 1.0, 3.0, 10.0),
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._retry_delays_s = retry_delays_s
        self._pending: list[tuple[Transition, asyncio.Future[bool]]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._stopped = False
        self.batches = 0  # transactions written, for benchmarks

    async def write(self, transition: Transition) -> bool:
        """Queue ``transition`` and wait until it is committed; True if it took effect."""
        return (await self.write_many([transition]))[0]

    async def write_many(self, transitions: Sequence[Transition]) -> list[bool]:
        if self._stopped:
            # The batching loop has ended (shutdown): write directly rather than wait forever.
            return await self._store.apply(transitions)
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in transitions]
        self._pending.extend(zip(transitions, futures, strict=True))
        self._wakeup.set()
        return list(await asyncio.gather(*futures))

    async def run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    batch = self._pending[: self._max_batch]
                    del self._pending[: self._max_batch]
                    await self._commit(batch)
                if self._closing:
                    return
        finally:
            self._stopped = True
            for _, future in self._pending:
                if not future.done():
                    future.set_exception(StoreError("the writer stopped before this was written"))
            self._pending.clear()

    async def _commit(self, batch: list[tuple[Transition, asyncio.Future[bool]]]) -> None:
        error = await self._write(batch, self._retry_delays_s)
        if error is None:
            return
        if len(batch) > 1:
            # One change the store refuses must not sink the others with it: write them one
            # by one, so only the refused one fails.
            log.warning("store.batch_refused", extra={"error": str(error), "size": len(batch)})
            for item in batch:
                self._fail_on_error([item], await self._write([item], ()))
            return
        self._fail_on_error(batch, error)

    async def _write(
        self, batch: list[tuple[Transition, asyncio.Future[bool]]], delays: Sequence[float]
    ) -> StoreError | None:
        """Write ``batch`` in one transaction, retrying after each of ``delays``; settle the
        futures on success, return the last error otherwise."""
        transitions = [t for t, _ in batch]
        for delay in (*delays, None):
            try:
                results = await self._store.apply(transitions)
            except StoreError as exc:
                if delay is None:
                    return exc
                log.warning("store.write_retry", extra={"error": str(exc), "delay_s": delay})
                await asyncio.sleep(delay)
                continue
            self.batches += 1
            for (_, future), ok in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(ok)
            return None
        return None  # pragma: no cover - the loop always returns

    @staticmethod
    def _fail_on_error(
        batch: list[tuple[Transition, asyncio.Future[bool]]], error: StoreError | None
    ) -> None:
        if error is None:
            return
        for _, future in batch:
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        """Write what is pending, then stop the loop (``run`` returns)."""
        self._closing = True
        self._wakeup.set()
