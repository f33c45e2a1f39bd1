"""A shared limiter that loses its state mid-run (Redis restarted): the engine admits nothing
on it until it has rebuilt it from the store's attempts, then goes on within the limit."""

from __future__ import annotations

import pytest

from herald.errors import LimiterUnavailable
from herald.limits.memory import MemoryLimiter
from herald.stores.memory import MemoryStore
from herald.testing import FakeConnector, FakePlatform, channel, new_post
from tests.suites.engine_restart import drain, engine_for, hourly

pytestmark = pytest.mark.virtual_time


class Forgetful:
    """A limiter that forgets every grant after its ``lose_after``-th, as a Redis restart
    would, and refuses to admit until it is rebuilt (what RedisLimiter does)."""

    def __init__(self, lose_after: int) -> None:
        self.inner = MemoryLimiter()
        self.lose_after = lose_after
        self.granted = 0
        self.ready = False
        self.rebuilds: list[int] = []  # grants each rebuild replayed
        self.refused = 0

    async def reserve(self, claims, now, *, pauses=()):
        if self.ready and self.granted == self.lose_after and not self.refused:
            self.inner, self.ready = MemoryLimiter(), False  # the restart, once
        if not self.ready:
            self.refused += 1
            raise LimiterUnavailable("lost its state")
        wait = await self.inner.reserve(claims, now, pauses=pauses)
        self.granted += wait == 0.0 and bool(claims)
        return wait

    async def refund(self, claims, granted_at, *, unsent=False):
        await self.inner.refund(claims, granted_at, unsent=unsent)

    async def replay(self, claims, granted_at):
        await self.inner.replay(claims, granted_at)

    async def block(self, key, until):
        await self.inner.block(key, until)

    def quota_use(self, now):
        return self.inner.quota_use(now)

    async def rebuild(self, earlier):
        if self.ready:
            return None
        grants = await earlier()
        for granted_at, claims in grants:
            await self.inner.replay(claims, granted_at)
        self.rebuilds.append(len(grants))
        self.ready = True
        return len(grants)


async def test_a_limiter_that_lost_its_state_is_rebuilt_before_it_admits_again():
    store, world, fb = MemoryStore(), FakePlatform(), channel()
    await store.open()
    await store.add_channels([fb])
    await store.add_posts([new_post([fb], text=f"post {i}") for i in range(6)])
    limiter = Forgetful(lose_after=2)
    engine = engine_for(store, FakeConnector(fb.platform, world), hourly(3))
    engine._limiter.limiter = limiter  # the engine's guard wraps this one
    await drain(engine)
    # Two were granted, then the limiter forgot them and refused. Rebuilt from the store, it
    # counts every request that went out: the first, and the second unless its last check
    # before the wire met the refusal (then it was not sent, and waits). Either way the hour
    # holds three requests, never five.
    assert limiter.refused >= 1
    assert limiter.rebuilds[0] == 0
    assert limiter.rebuilds[1:] in ([1], [2])
    assert world.published() == 3
    await store.close()
