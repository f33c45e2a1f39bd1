"""Script calls made together go as one call of the script, each with its own answer."""

from __future__ import annotations

import asyncio
import socket

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from herald.errors import LimiterError
from herald.limits.batching import ScriptBatcher
from tests.conftest import new_redis, new_redis_prefix, redis_client

pytestmark = pytest.mark.redis

# A batch script: adds ARGV[1 + i] to KEYS[1 + i] for each call i, in turn, and answers each
# total, times KEYS[1] and ARGV[1] (the batch's leading key and argument: a factor). A negative
# amount is refused with an error.
ADD = """
local factor = tonumber(redis.call('GET', KEYS[1]) or '1') * tonumber(ARGV[1])
local answers = {}
for i = 2, #ARGV do
  local amount = tonumber(ARGV[i])
  if amount < 0 then return redis.error_reply('negative') end
  answers[i - 1] = redis.call('INCRBY', KEYS[i], amount) * factor
end
return answers
"""


def _batcher(client: Redis, prefix: str, *, timeout_s: float | None = None) -> ScriptBatcher:
    return ScriptBatcher(client, ADD, keys=[f"{prefix}:factor"], args=["1"], timeout_s=timeout_s)


async def test_calls_made_in_one_turn_go_in_one_call_with_their_own_answers():
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        batcher = _batcher(client, prefix)
        await client.set(f"{prefix}:factor", 10)  # the leading key is every batch's
        key, other = f"{prefix}:n", f"{prefix}:m"
        answers = await asyncio.gather(
            *(batcher([key], str(n)) for n in (1, 2, 3)), batcher([other], "7")
        )
        assert answers == [10, 30, 60, 70]  # in the order they were made, each its own key
        assert (batcher.batches, batcher.calls) == (1, 4)
        assert await batcher([key], "4") == 100  # alone: its own call
        assert (batcher.batches, batcher.calls) == (2, 5)


async def test_a_failing_script_fails_every_call_of_its_batch():
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        batcher = _batcher(client, prefix)
        key = f"{prefix}:n"
        answers = await asyncio.gather(
            batcher([key], "1"),
            batcher([key], "-1"),
            batcher([key], "2"),
            return_exceptions=True,
        )
        assert all(isinstance(a, ResponseError) and "negative" in str(a) for a in answers)
        assert await batcher([key], "5") == 6  # what ran before the error stays, as Redis keeps it


async def test_a_script_that_answers_fewer_calls_fails_every_call_rather_than_hang_them():
    # The callers have no deadline of their own: an answer missing must not leave one waiting.
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        short = ScriptBatcher(client, "return {1}", keys=[], args=[], timeout_s=None)
        answers = await asyncio.wait_for(
            asyncio.gather(short([], "a"), short([], "b"), return_exceptions=True), 5
        )
        assert all(isinstance(a, LimiterError) for a in answers), answers


async def test_a_script_redis_forgot_is_loaded_again_and_every_call_answered():
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        batcher = _batcher(client, prefix)
        key = f"{prefix}:n"
        await batcher([key], "1")
        await client.script_flush()  # as after a restart
        answers = await asyncio.gather(*(batcher([key], "1") for _ in range(3)))
        assert answers == [2, 3, 4]


async def test_a_caller_that_gives_up_gives_up_only_its_own_call():
    """Its deadline passed (or its lane was drained): its call is left out if the batch has
    not gone yet, and the others' calls go, each answered."""
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        batcher = _batcher(client, prefix)
        key = f"{prefix}:n"
        calls = [asyncio.create_task(batcher([key], str(n))) for n in (1, 2, 4)]
        await asyncio.sleep(0)  # every call made; the batch not sent yet
        calls[0].cancel()
        assert await asyncio.gather(*calls[1:]) == [2, 6]  # the 1 never went
        with pytest.raises(asyncio.CancelledError):
            await calls[0]
        assert (batcher.batches, batcher.calls) == (1, 2)


async def test_a_batch_is_bounded_by_its_deadline():
    """A server that accepts and never answers: every call of the batch fails in time."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = new_redis(f"redis://127.0.0.1:{port}/0")
    try:
        batcher = _batcher(client, "k", timeout_s=0.3)
        answers = await asyncio.wait_for(
            asyncio.gather(*(batcher(["k"], "1") for _ in range(3)), return_exceptions=True),
            5,
        )
        assert all(isinstance(a, TimeoutError) for a in answers)
    finally:
        await client.aclose()
        listener.close()


async def test_a_server_that_cannot_be_reached_fails_every_call_of_the_batch():
    client = new_redis("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        batcher = _batcher(client, "k")
        answers = await asyncio.gather(
            *(batcher(["k"], "1") for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(a, Exception) for a in answers)
    finally:
        await client.aclose()
