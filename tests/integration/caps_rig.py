"""The worker processes of the shared caps' tests (tests/integration/test_redis_caps.py).

``hammer``: take a slot of one cap as fast as Redis answers, hold it a moment, release it,
until the round count is reached; while holding, count the holders in a Redis counter (INCR
after the slot is taken, DECR before it is released), so the test reads the most that were
ever in flight at once across every process. ``hold``: take slots and keep renewing them,
until killed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import redis.asyncio as aioredis

from herald.caps.redis import RedisCaps
from herald.types import CapClaim, Permit

CAP = CapClaim("hammer", 3)


async def hammer(url: str, prefix: str, rounds: str, ready: str, go: str) -> dict[str, int]:
    client = aioredis.Redis.from_url(url)
    caps = RedisCaps(client, prefix=prefix, lease_s=5.0)
    counter, most, held, refused = f"{prefix}:test:holders", 0, 0, 0
    try:
        await client.rpush(ready, 1)
        await client.blpop([go], timeout=30)
        while held < int(rounds):
            got = await caps.acquire([CAP], "hammer", time.time())
            if not isinstance(got, Permit):
                refused += 1
                continue  # ask again at once: the hammering is the point
            most = max(most, int(await client.incr(counter)))
            await asyncio.sleep(random.uniform(0, 0.002))  # the request, in flight
            await client.decr(counter)
            await caps.release([got])
            held += 1
        return {"held": held, "most": most, "refused": refused}
    finally:
        await client.aclose()


async def hold(url: str, prefix: str, lease_s: str, count: str) -> None:
    client = aioredis.Redis.from_url(url)
    caps = RedisCaps(client, prefix=prefix, lease_s=float(lease_s))
    permits = []
    for _ in range(int(count)):
        got = await caps.acquire([CAP], "holder", time.time())
        assert isinstance(got, Permit), got
        permits.append(got)
    print("held", flush=True)
    while True:  # renewed each third of a lease, as an engine's caps gate does
        await asyncio.sleep(float(lease_s) / 3)
        await caps.renew(permits, time.time())


if __name__ == "__main__":
    if sys.argv[1] == "hammer":
        print(json.dumps(asyncio.run(hammer(*sys.argv[2:7]))))
    else:
        asyncio.run(hold(*sys.argv[2:6]))
