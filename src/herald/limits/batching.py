"""Calls of one Lua script made in the same turn of the event loop go to Redis together.

A worker admits a lane's ready jobs together (:mod:`herald.engine.lane`): each admission is
its own script call, atomic on its own, but they are sent as one pipeline, so that a batch of
admissions costs one write and one read on the socket rather than one of each per job. On a
busy worker that socket traffic, not the script, is most of what an admission costs.

The first call of a turn starts a sender task; it lets the event loop run the other ready
tasks once (their calls join the batch), sends the batch and settles each caller's future
with its own answer or error. A caller that gives up (its deadline) gives up only its own
answer: the batch goes on for the others, as each call would have alone.

redis-py's own pipeline of ``Script`` objects asks ``SCRIPT EXISTS`` before every batch (one
more round trip each time); the batch here sends ``EVALSHA`` and loads the script only when
Redis answers that it does not know it (a restart, a ``SCRIPT FLUSH``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

__all__ = ["ScriptBatcher"]

_Call = tuple[list[str], list[str], "asyncio.Future[Any]"]


class ScriptBatcher:
    """Runs the script ``source`` on ``client``; concurrent calls share one round trip.
    ``timeout_s`` bounds each batch (None: unbounded), as the callers bound their waits."""

    def __init__(
        self, client: aioredis.Redis, source: str, *, timeout_s: float | None = None
    ) -> None:
        self._client = client
        self.script = client.register_script(source)  # for callers that pipeline it themselves
        self._timeout_s = timeout_s
        self._pending: list[_Call] = []
        self._senders: set[asyncio.Task[None]] = set()
        self.batches = 0  # round trips made, for benchmarks and tests
        self.calls = 0

    async def __call__(self, keys: list[str], args: list[str]) -> Any:
        """The script's answer for ``keys`` and ``args``, or its error (as redis-py raises it)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, args, future))
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
        except asyncio.CancelledError:
            for _, _, future in calls:
                future.cancel()  # the loop is closing: so are its callers
            raise
        except Exception as exc:
            for _, _, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), answer in zip(calls, answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, Exception):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    async def _send(self, calls: list[_Call]) -> list[Any]:
        self.batches += 1
        self.calls += len(calls)
        if len(calls) == 1:
            keys, args, _ = calls[0]
            return [await self.script(keys=keys, args=args)]  # loads the script if need be
        answers = await self._pipeline(calls)
        unknown = [i for i, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if unknown:
            await self._client.script_load(self.script.script)
            again = await self._pipeline([calls[i] for i in unknown])
            for i, answer in zip(unknown, again, strict=True):
                answers[i] = answer
        return answers

    async def _pipeline(self, calls: list[_Call]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                pipe.evalsha(self.script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))
