"""Script calls made together share one round trip, each with its own answer or error."""

from __future__ import annotations

import asyncio
import socket

import pytest
from redis.exceptions import ResponseError

from herald.limits.batching import ScriptBatcher
from tests.conftest import new_redis, new_redis_prefix, redis_client

pytestmark = pytest.mark.redis

# Adds ARGV[1] to KEYS[1] and answers the total; a negative amount is refused with an error.
ADD = """
local amount = tonumber(ARGV[1])
if amount < 0 then return redis.error_reply('negative') end
return redis.call('INCRBY', KEYS[1], amount)
"""


async def test_calls_made_in_one_turn_go_in_one_round_trip_with_their_own_answers():
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        batcher = ScriptBatcher(client, ADD)
        key = f"{prefix}:n"
        answers = await asyncio.gather(*(batcher([key], [str(n)]) for n in (1, 2, 3, 4)))
        assert answers == [1, 3, 6, 10]  # in the order they were made
        assert (batcher.batches, batcher.calls) == (1, 4)
        assert await batcher([key], ["5"]) == 15  # alone: its own round trip
        assert (batcher.batches, batcher.calls) == (2, 5)


async def test_one_call_s_error_is_its_own():
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        batcher = ScriptBatcher(client, ADD)
        key = f"{prefix}:n"
        answers = await asyncio.gather(
            batcher([key], ["1"]),
            batcher([key], ["-1"]),
            batcher([key], ["2"]),
            return_exceptions=True,
        )
        assert answers[0] == 1
        assert answers[2] == 3
        assert isinstance(answers[1], ResponseError)
        assert "negative" in str(answers[1])


async def test_a_script_redis_forgot_is_loaded_again_and_every_call_answered():
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        batcher = ScriptBatcher(client, ADD)
        key = f"{prefix}:n"
        await batcher([key], ["1"])
        await client.script_flush()  # as after a restart
        answers = await asyncio.gather(*(batcher([key], ["1"]) for _ in range(3)))
        assert answers == [2, 3, 4]


async def test_a_caller_that_gives_up_gives_up_only_its_own_call():
    """Its deadline passed (or its lane was drained): its call is left out if the batch has
    not gone yet, and the others' calls go, each answered."""
    prefix = new_redis_prefix()
    async with redis_client(prefix) as client:
        batcher = ScriptBatcher(client, ADD)
        key = f"{prefix}:n"
        calls = [asyncio.create_task(batcher([key], [str(n)])) for n in (1, 2, 4)]
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
        batcher = ScriptBatcher(client, ADD, timeout_s=0.3)
        answers = await asyncio.wait_for(
            asyncio.gather(*(batcher(["k"], ["1"]) for _ in range(3)), return_exceptions=True),
            5,
        )
        assert all(isinstance(a, TimeoutError) for a in answers)
    finally:
        await client.aclose()
        listener.close()


async def test_a_server_that_cannot_be_reached_fails_every_call_of_the_batch():
    client = new_redis("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        batcher = ScriptBatcher(client, ADD)
        answers = await asyncio.gather(
            *(batcher(["k"], ["1"]) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(a, Exception) for a in answers)
    finally:
        await client.aclose()
