"""Calls of one Lua script made in the same turn of the event loop go to Redis as one call.

A worker admits a lane's ready jobs together (:mod:`herald.engine.lane`): each admission is
atomic on its own, and the admissions made together are sent as one call of a script that
takes them in turn, so that a batch of admissions costs one command, one write and one read
on the socket rather than one of each per job. On a busy worker that socket traffic and the
client's work for each command, not the script, is most of what an admission costs.

The script takes a batch: ``KEYS`` are the batcher's leading keys, then every call's keys in
turn; ``ARGV`` the leading arguments, then one argument per call; it answers a list, one
answer per call, in order. A script that fails fails every call of its batch (Redis keeps
what it wrote before the error, as it would of a call on its own).

The first call of a turn starts a sender task; it lets the event loop run the other ready
tasks once (their calls join the batch), sends the batch and settles each caller's future
with its own answer or the batch's error. A caller that gives up (its deadline) gives up only
its own answer: the batch goes on for the others, as each call would have alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from herald.errors import LimiterError

__all__ = ["ScriptBatcher"]

_Call = tuple[list[str], str, "asyncio.Future[Any]"]


class ScriptBatcher:
    """Runs the batch script ``source`` on ``client``; concurrent calls share one call of it.
    ``keys`` and ``args`` lead every batch's; ``timeout_s`` bounds each batch (None:
    unbounded), as the callers bound their waits."""

    def __init__(
        self,
        client: aioredis.Redis,
        source: str,
        *,
        keys: Sequence[str] = (),
        args: Sequence[str] = (),
        timeout_s: float | None = None,
    ) -> None:
        # redis-py's Script sends EVALSHA, and loads the script only when Redis answers that
        # it does not know it (a restart, a SCRIPT FLUSH).
        self.script = client.register_script(source)
        self._keys, self._args = list(keys), list(args)
        self._timeout_s = timeout_s
        self._pending: list[_Call] = []
        self._senders: set[asyncio.Task[None]] = set()
        self.batches = 0  # round trips made, for benchmarks and tests
        self.calls = 0

    async def __call__(self, keys: list[str], arg: str) -> Any:
        """The script's answer for this call's ``keys`` and ``arg``, or its batch's error
        (as redis-py raises it)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, arg, future))
        if len(self._pending) == 1:
            sender = asyncio.create_task(self._send_soon())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await future  # cancelled, it is the only one to go: the batch goes on

    async def _send_soon(self) -> None:
        await asyncio.sleep(0)  # the calls made by tasks ready now join this batch
        batch, self._pending = self._pending, []
        calls = [call for call in batch if not call[2].done()]  # a caller may have given up
        if not calls:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                answers = await self._send(calls)
            if len(answers) != len(calls):
                raise LimiterError(f"the script answered {len(answers)} of {len(calls)} calls")
        except asyncio.CancelledError:
            for _, _, future in calls:
                future.cancel()  # the loop is closing: so are its callers
            raise
        except Exception as exc:
            # Every caller hears it: a future left unset would wait for ever (the callers
            # have no deadline of their own: the batch's is theirs).
            for _, _, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), answer in zip(calls, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    async def _send(self, calls: list[_Call]) -> list[Any]:
        self.batches += 1
        self.calls += len(calls)
        keys, args = list(self._keys), list(self._args)
        for call_keys, arg, _ in calls:
            keys += call_keys
            args.append(arg)
        return list(await self.script(keys=keys, args=args))
