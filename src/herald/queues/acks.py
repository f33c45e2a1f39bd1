"""Acks that linger: held up to ``linger_s`` to go together, at most ``batch`` at a time.

An ack is never urgent: a live consumer's messages stay its own (a Redis entry is not taken
over, a RabbitMQ delivery is not handed to another), and an ack that is lost brings its
message back to some worker, which finds the claim gone and acks it then. One round trip (or
frame) per job was much of what a worker spent on its broker, so both brokers' queues keep
their acks here and send them together: a pipeline of ``XACK``/``XDEL``, or ``basic.ack``
frames with ``multiple`` where the tags allow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from herald.errors import QueueError

__all__ = ["LingeringAcks"]

log = logging.getLogger("herald.queues")

T = TypeVar("T")


class LingeringAcks(Generic[T]):
    """``send`` sends a batch of acks (it may raise :class:`QueueError`: they are lost, and
    logged). ``after_timed`` runs after a flush the linger's timer started (the queue closes
    its connection once everything is acked)."""

    def __init__(
        self,
        send: Callable[[list[T]], Awaitable[None]],
        *,
        batch: int,
        linger_s: float,
        after_timed: Callable[[], Awaitable[None]],
    ) -> None:
        if batch < 1 or linger_s < 0:
            raise ValueError("the ack batch must be positive and the linger not negative")
        self._send = send
        self._batch = batch
        self._linger_s = linger_s
        self._after_timed = after_timed
        self._pending: list[T] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timed: set[asyncio.Task[None]] = set()  # flushes the timer started
        self._flushing = 0  # flushes under way

    @property
    def busy(self) -> bool:
        """Acks wait, or are on their way."""
        return bool(self._pending or self._flushing)

    async def add(self, ack: T, *, now: bool = False) -> None:
        """Hold ``ack``; send every held one at once if ``now`` or the batch is full."""
        self._pending.append(ack)
        if now or len(self._pending) >= self._batch:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self._expire)

    def _expire(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self._timed_flush())
        self._timed.add(task)
        task.add_done_callback(self._timed.discard)

    async def _timed_flush(self) -> None:
        await self.flush()
        await self._after_timed()

    async def flush(self) -> None:
        """Send every held ack now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        self._flushing += 1
        try:
            await self._send(batch)
        except QueueError as exc:
            log.warning("queue.acks_lost", extra={"acks": len(batch), "error": str(exc)})
        finally:
            self._flushing -= 1
