"""The Redis caps beyond the contract: several processes hammering one cap, a killed holder,
a restarted or unreachable server."""

from __future__ import annotations

import asyncio
import json
import sys
import time

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from herald.caps.redis import RedisCaps
from herald.errors import CapsUnavailable
from herald.types import CapClaim, CapsFull, Permit
from tests.conftest import REDIS_URL, drop_keys, new_redis, new_redis_prefix
from tests.integration.caps_rig import CAP
from tests.integration.redis_rig import ROOT, OwnRedis, run_together

pytestmark = pytest.mark.redis

RIG = (sys.executable, "-m", "tests.integration.caps_rig")


@pytest.fixture
async def prefix():
    prefix = new_redis_prefix()
    client = new_redis()
    try:
        # The server was first seen long ago: the caps grant at once.
        await RedisCaps(client, prefix=prefix).acquire([], "test", -1e9)
        yield prefix
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


@pytest.mark.slow
async def test_processes_hammering_one_cap_never_hold_more_than_it(prefix):
    """Four processes take and release one cap of 3 as fast as Redis answers: the holders
    counted in Redis never exceed 3, and reach it. Were the acquisition not one atomic step,
    two processes would read the same count and both take the last slot."""
    client = new_redis()
    try:
        argv = [*RIG, "hammer", REDIS_URL, prefix, "300"]
        outputs = await run_together(client, prefix, argv, 4, within_s=120)
    finally:
        await client.aclose()
    results = [json.loads(out) for out in outputs]
    assert [r["held"] for r in results] == [300] * 4
    assert max(r["most"] for r in results) == CAP.limit
    assert sum(r["refused"] for r in results) > 0, "the cap was contended"


async def test_a_killed_holders_slots_come_back_within_a_lease(prefix):
    lease_s = 1.0
    caps = RedisCaps(new_redis(), prefix=prefix, lease_s=lease_s)
    holder = await asyncio.create_subprocess_exec(
        *RIG,
        "hold",
        REDIS_URL,
        prefix,
        str(lease_s),
        str(CAP.limit),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"
        # Renewed, its slots outlive their first lease: still full two leases on.
        await asyncio.sleep(2 * lease_s)  # the time under test, not a wait for a condition
        assert isinstance(await caps.acquire([CAP], "test", time.time()), CapsFull)
        holder.kill()
        await holder.wait()
        killed = time.monotonic()
        while not isinstance(got := await caps.acquire([CAP], "test", time.time()), Permit):
            assert time.monotonic() - killed < 3 * lease_s, "the slots never came back"
            await asyncio.sleep(got.wait_s)  # until the named lease ends
        back_s = time.monotonic() - killed
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await caps.client.aclose()
    assert back_s <= lease_s + 0.5  # within about a lease of the kill
    print(f"slots back {back_s:.2f} s after the kill (lease {lease_s} s)")


async def test_a_restarted_redis_grants_nothing_for_a_lease_while_holders_renew():
    server = OwnRedis()
    server.start()
    # The connection the restart cut is made again (as bootstrap.open_caps's client does).
    client = Redis.from_url(server.url, retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2))
    caps = RedisCaps(client, lease_s=1.0)
    claim = [CapClaim("k", 1)]
    try:
        assert await caps.acquire(claim, "h", 0.0) == CapsFull(1.0)  # first sight: a lease
        held = await caps.acquire(claim, "h", 1.0)
        assert isinstance(held, Permit)
        server.restart()  # its slot is gone, its request still in flight
        assert await caps.acquire(claim, "h", 2.0) == CapsFull(1.0)
        assert await caps.acquire(claim, "h", 2.5) == CapsFull(0.5)
        await caps.renew([held], 2.6)  # the holder renews: its slot is back
        full = await caps.acquire(claim, "h", 3.0)
        assert isinstance(full, CapsFull)
        assert full.keys == ("k",)
        assert full.wait_s == pytest.approx(0.6)  # its renewed lease ends at 3.6
        await caps.release([held])
        assert isinstance(await caps.acquire(claim, "h", 3.1), Permit)
    finally:
        await caps.client.aclose()
        server.stop()


async def test_an_unreachable_redis_grants_nothing():
    server = OwnRedis()
    server.start()
    caps = RedisCaps(new_redis(server.url), lease_s=1.0)
    try:
        await caps.acquire([], "h", 0.0)
        server.stop()
        with pytest.raises(CapsUnavailable):
            await caps.acquire([CapClaim("k", 1)], "h", 2.0)
        with pytest.raises(CapsUnavailable):
            await caps.release([Permit("h:x", ("k",))])
    finally:
        await caps.client.aclose()
        server.stop()
