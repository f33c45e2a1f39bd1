"""Calls of one Lua script made in the same turn of the event loop go to Redis together.

A worker admits a lane's ready jobs together (:mod:`herald.engine.lane`): each admission is
its own script call, atomic on its own, but they are sent as one pipeline, so that a batch of
admissions costs one write and one read on the socket rather than one of each per job. On a
busy worker that socket traffic, not the script, is most of what an admission costs.

The first call of a turn leads: it lets the event loop run the other ready tasks once (their
calls join its batch), then sends the batch and hands each caller its own answer or error. An
idle worker's single call goes at once, as before, with one extra turn of the loop.

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
    """Runs the script ``source`` on ``client``; concurrent calls share one round trip."""

    def __init__(self, client: aioredis.Redis, source: str) -> None:
        self._client = client
        self._script = client.register_script(source)
        self._pending: list[_Call] = []
        self._tasks: set[asyncio.Task[None]] = set()  # batches sent for a leader that gave up
        self.batches = 0  # round trips made, for benchmarks and tests
        self.calls = 0

    async def __call__(self, keys: list[str], args: list[str]) -> Any:
        """The script's answer for ``keys`` and ``args``, or its error (as redis-py raises it)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, args, future))
        if len(self._pending) == 1:
            await self._lead(future)
        return await future

    async def _lead(self, own: asyncio.Future[Any]) -> None:
        """Let the tasks that are ready run once, then send what they added, and answer."""
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            # The leader gave up before sending: the others' calls still go, on their own.
            own.cancel()
            self._tasks.add(task := asyncio.create_task(self._answer(self._take())))
            task.add_done_callback(self._tasks.discard)
            raise
        try:
            await self._answer(self._take())
        except asyncio.CancelledError:
            # Its deadline passed mid-send; _answer told the others, and the leader raises.
            if own.done():
                own.exception()  # retrieved here: nobody awaits it any more
            else:
                own.cancel()
            raise

    def _take(self) -> list[_Call]:
        batch, self._pending = self._pending, []
        return [call for call in batch if not call[2].done()]  # a caller may have given up

    async def _answer(self, calls: list[_Call]) -> None:
        """Send ``calls`` and settle each one's future with its answer or error."""
        if not calls:
            return
        try:
            answers = await self._send(calls)
        except BaseException as exc:
            error = (
                TimeoutError("sent in a batch that was cancelled")
                if isinstance(exc, asyncio.CancelledError)
                else exc
            )
            for _, _, future in calls:
                if not future.done():
                    future.set_exception(error)
            if isinstance(exc, asyncio.CancelledError):
                raise
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
            return [await self._script(keys=keys, args=args)]  # loads the script if need be
        answers = await self._pipeline(calls)
        unknown = [i for i, answer in enumerate(answers) if isinstance(answer, NoScriptError)]
        if unknown:
            await self._client.script_load(self._script.script)
            again = await self._pipeline([calls[i] for i in unknown])
            for i, answer in zip(unknown, again, strict=True):
                answers[i] = answer
        return answers

    async def _pipeline(self, calls: list[_Call]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))
