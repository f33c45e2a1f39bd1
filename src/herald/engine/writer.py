"""Group commit: state changes from many workers written in one transaction.

A worker hands a :class:`Transition` over and awaits its commit. While one batch is being
written, the next ones gather; the next write takes them all. Under load one fsync covers
hundreds of deliveries; when idle a single change is written at once (no timer).

While the store is away (:class:`~herald.errors.StoreUnavailable`) a batch is written again
after a growing back-off, for as long as it takes: the workers wait for their writes, and
nothing is sent meanwhile, since ``publishing`` is committed before a request leaves. Once the
writer is closing, it gives up after its grace. Any other store error is not tried again (the
same write would fail the same way): a batch it sinks is written again one change at a time,
so only the refused change fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from herald.backoff import Backoff
from herald.domain import Transition
from herald.engine.health import StoreHealth
from herald.errors import StoreError, StoreUnavailable
from herald.types import EngineStore
from herald.wakeup import wait_first

__all__ = ["TransitionWriter"]

log = logging.getLogger("herald.writer")


class TransitionWriter:
    def __init__(
        self,
        store: EngineStore,
        *,
        max_batch: int = 1000,
        health: StoreHealth | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._health = health
        self._backoff = backoff or (
            health.backoff() if health is not None else Backoff(base_s=0.1, cap_s=5.0)
        )
        self._pending: list[tuple[Transition, asyncio.Future[bool]]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._give_up_at: float | None = None  # loop time: set by close()
        self._stopped = False
        self.batches = 0  # transactions written, for benchmarks

    async def write(self, transition: Transition) -> bool:
        """Queue ``transition`` and wait until it is committed; True if it took effect."""
        if self._stopped:
            return (await self._store.apply([transition]))[0]
        return await self._queued([transition])[0]

    async def write_many(self, transitions: Sequence[Transition]) -> list[bool]:
        if self._stopped:
            # The batching loop has ended (shutdown): write directly rather than wait forever.
            return await self._store.apply(transitions)
        return list(await asyncio.gather(*self._queued(transitions)))

    def _queued(self, transitions: Sequence[Transition]) -> list[asyncio.Future[bool]]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in transitions]
        self._pending.extend(zip(transitions, futures, strict=True))
        self._wakeup.set()
        return futures

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
        error = await self._write(batch)
        if error is None:
            return
        if len(batch) > 1 and not isinstance(error, StoreUnavailable):
            # One change the store refuses must not sink the others with it: write them one
            # by one, so only the refused one fails.
            log.warning("store.batch_refused", extra={"error": str(error), "size": len(batch)})
            for item in batch:
                self._fail_on_error([item], await self._write([item]))
            return
        self._fail_on_error(batch, error)

    async def _write(
        self, batch: list[tuple[Transition, asyncio.Future[bool]]]
    ) -> StoreError | None:
        """Write ``batch`` in one transaction, again while the store is away; settle the
        futures on success, return the error otherwise."""
        transitions = [t for t, _ in batch]
        while True:
            try:
                results = await self._store.apply(transitions)
            except StoreUnavailable as exc:
                if self._health is not None:
                    self._health.failed("writer", exc)
                wait_s = self._backoff.next_s()
                log.warning("store.write_retry", extra={"error": str(exc), "delay_s": wait_s})
                if self._give_up_at is None:
                    await wait_first(self._closed, within_s=wait_s)  # close() sets a deadline
                    continue
                wait_s = min(wait_s, self._give_up_at - asyncio.get_running_loop().time())
                if wait_s <= 0:
                    return exc
                await asyncio.sleep(wait_s)
                continue
            except StoreError as exc:
                return exc
            self._backoff.reset()
            if self._health is not None:
                self._health.answered()
            self.batches += 1
            for (_, future), ok in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(ok)
            return None

    @staticmethod
    def _fail_on_error(
        batch: list[tuple[Transition, asyncio.Future[bool]]], error: StoreError | None
    ) -> None:
        if error is None:
            return
        for _, future in batch:
            if not future.done():
                future.set_exception(error)

    async def close(self, grace_s: float = 10.0) -> None:
        """Write what is pending, then stop the loop (``run`` returns). While the store is
        away, pending writes are tried again for ``grace_s`` more, then given up."""
        self._closing = True
        self._give_up_at = asyncio.get_running_loop().time() + grace_s
        self._closed.set()
        self._wakeup.set()
