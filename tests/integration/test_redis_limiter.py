"""The Redis limiter beyond the contract: several processes on one Redis, restarts, an
unreachable server, one rebuilder among several engines."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from herald.errors import LimiterUnavailable
from herald.limits.redis import RedisLimiter
from herald.limits.rules import CalendarQuota, LimitClaim, LimitRule, RollingWindow
from tests.conftest import REDIS_URL, drop_keys, limiter_maker, new_redis, new_redis_prefix
from tests.integration import redis_rig
from tests.integration.redis_rig import OwnRedis, run_together

pytestmark = pytest.mark.redis

HOURLY = LimitRule("calls", "calls", "channel", RollingWindow(3, 3600.0))


def calls(key: str = "k") -> list[LimitClaim]:
    return [LimitClaim(key, HOURLY, 1)]


async def earlier_grants(*times: float):
    async def earlier():
        return [(t, calls()) for t in times]

    return earlier


def most_in_a_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.slow
async def test_processes_sharing_one_redis_never_exceed_a_limit_and_use_it_whole(request):
    """Four processes reserve one rolling window and one daily quota as fast as they can: no
    window of the rule ever holds more than its limit, and the day quota is spent to the last
    unit. Were the admission not one atomic step, two processes would read the same count
    and both record, and the windows would overflow."""
    needs = redis_rig.WINDOW.algorithm, redis_rig.DAY.algorithm
    async with limiter_maker("redis") as make:
        limiter = await make()  # the prefix, rebuilt: the workers find the marker
        prefix = limiter.prefix
        client = new_redis()
        try:
            argv = [sys.executable, "-m", "tests.integration.redis_rig", REDIS_URL, prefix]
            outputs = await run_together(client, prefix, argv, 4, within_s=60)
        finally:
            await client.aclose()
    grants = [json.loads(out) for out in outputs]
    times = [t for worker in grants for t in worker]
    window, day = needs
    assert all(grants), "every process was granted some"
    assert len(times) == day.limit  # the day quota, to the last unit, never one more
    # No window of the platform's length holds more than the limit, and some hold it all.
    assert most_in_a_window(times, window.window_s) == window.limit


async def test_a_grant_older_than_the_rebuild_is_never_refunded():
    # A worker was granted a request just before Redis restarted, and had not yet marked it
    # as leaving in the store: the rebuild's replay did not count it. Its refund must not
    # take out a grant the replay did count (that would let one request too many through).
    day = LimitRule("posts", "posts", "channel", CalendarQuota(2, "UTC"))
    claims = [LimitClaim("ch", day, 1)]
    client = new_redis()
    limiter = RedisLimiter(client, prefix=new_redis_prefix(), wall_clock=lambda: 1000.0)
    try:
        granted_before = 990.0  # granted by the lost server, unknown to the store
        assert await limiter.rebuild(await _grants(claims, 995.0)) == 1
        assert await limiter.reserve(claims, 1001.0) == 0.0  # two used: the day is full
        await limiter.refund(claims, granted_before, unsent=True)
        assert await limiter.reserve(claims, 1002.0) > 0  # still full: nothing given back
        # A grant made since the rebuild is given back as before.
        await limiter.refund(claims, 1001.0, unsent=True)
        assert await limiter.reserve(claims, 1003.0) == 0.0
    finally:
        await drop_keys(client, limiter.prefix)
        await client.aclose()


async def _grants(claims: list[LimitClaim], *times: float):
    async def earlier():
        return [(t, claims) for t in times]

    return earlier


async def test_a_restarted_redis_admits_nothing_until_rebuilt():
    server = OwnRedis()
    server.start()
    limiter = RedisLimiter.from_url(server.url)
    try:
        assert await limiter.rebuild(await earlier_grants(0.0)) == 1
        assert await limiter.reserve(calls(), 10.0) == 0.0
        server.restart()  # everything Redis held is gone, the marker too
        with pytest.raises(LimiterUnavailable):
            await limiter.reserve(calls(), 20.0)
        with pytest.raises(LimiterUnavailable):  # still: it never admits on an empty state
            await limiter.reserve(calls(), 21.0)
        # Rebuilt from the store's record of the two grants, it counts them again.
        assert await limiter.rebuild(await earlier_grants(0.0, 10.0)) == 2
        assert await limiter.reserve(calls(), 30.0) == 0.0
        assert await limiter.reserve(calls(), 40.0) == 3560.0  # full until t=0 leaves
    finally:
        await limiter.aclose()
        server.stop()


async def test_an_unreachable_redis_is_unavailable_and_a_rebuild_waits_for_it():
    server = OwnRedis()
    server.start()
    limiter = RedisLimiter.from_url(server.url, timeout_s=0.5)
    try:
        await limiter.rebuild(await earlier_grants())
        server.stop()
        with pytest.raises(LimiterUnavailable):
            await limiter.reserve(calls(), 0.0)
        with pytest.raises(LimiterUnavailable):
            await limiter.rebuild(await earlier_grants())
        server.start()
        with pytest.raises(LimiterUnavailable):  # back, but empty: not rebuilt yet
            await limiter.reserve(calls(), 0.0)
        assert await limiter.rebuild(await earlier_grants()) == 0
        assert await limiter.reserve(calls(), 0.0) == 0.0
    finally:
        await limiter.aclose()
        server.stop()


async def test_one_engine_rebuilds_the_others_wait_for_its_marker():
    client = new_redis()
    prefix = "herald:test:rebuild"
    await drop_keys(client, prefix)
    limiters = [RedisLimiter(client, prefix=prefix, marker_poll_s=0.01) for _ in range(4)]
    reads = []

    async def earlier():
        reads.append(1)
        await asyncio.sleep(0.1)  # a store read that takes a while: the others must wait
        return [(0.0, calls())]

    try:
        results = await asyncio.gather(*(limiter.rebuild(earlier) for limiter in limiters))
        assert reads == [1]  # the store was read once
        assert sorted(results, key=lambda r: r is not None) == [None, None, None, 1]
        # Every one admits, on the one rebuilt state: the replayed grant and two more fill it.
        assert await limiters[0].reserve(calls(), 1.0) == 0.0
        assert await limiters[1].reserve(calls(), 1.0) == 0.0
        assert await limiters[2].reserve(calls(), 2.0) == 3598.0
        assert await limiters[3].reserve(calls(), 2.0) == 3598.0
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


async def test_a_rebuild_forgets_counts_a_previous_server_left():
    """Redis restored from a snapshot holds counts the store may contradict: the store wins."""
    client = new_redis()
    prefix = "herald:test:stale"
    await drop_keys(client, prefix)
    try:
        limiter = RedisLimiter(client, prefix=prefix)
        await limiter.rebuild(await earlier_grants())
        for t in (0.0, 1.0, 2.0):
            assert await limiter.reserve(calls(), t) == 0.0
        await client.set(f"{prefix}:rebuilt", "another-server")  # as after a restore
        with pytest.raises(LimiterUnavailable):
            await limiter.reserve(calls(), 3.0)
        assert await limiter.rebuild(await earlier_grants(0.0)) == 1
        assert await limiter.reserve(calls(), 4.0) == 0.0  # 2 of 3, not 4 of 3
        assert await limiter.reserve(calls(), 5.0) == 0.0
        assert await limiter.reserve(calls(), 6.0) == 3594.0
    finally:
        await drop_keys(client, prefix)
        await client.aclose()
