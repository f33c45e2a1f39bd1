"""An engine on the Redis limiter whose Redis restarts mid-run (a server of the test's own):
it admits nothing on the emptied limiter, rebuilds it from the store, and goes on within the
limit."""

from __future__ import annotations

import logging

import pytest

from herald.limits.redis import RedisLimiter
from herald.stores.memory import MemoryStore
from herald.testing import FakeConnector, FakePlatform, channel, new_post
from tests.integration.redis_rig import OwnRedis
from tests.suites.engine_restart import drain, engine_for, hourly

pytestmark = pytest.mark.redis


class RestartsRedis(FakeConnector):
    """Redis restarts as the platform takes its ``after``-th post."""

    def __init__(self, platform, world, server: OwnRedis, after: int) -> None:
        super().__init__(platform, world)
        self.server, self.after = server, after

    async def publish(self, request):
        published = await super().publish(request)
        if self.world.published() == self.after:
            self.server.restart()
        return published


async def test_an_engine_rebuilds_a_restarted_redis_before_it_admits_again(caplog):
    caplog.set_level(logging.INFO, logger="herald.engine")
    server = OwnRedis()
    server.start()
    limiter = RedisLimiter.from_url(server.url)
    store, world, fb = MemoryStore(), FakePlatform(), channel()
    await store.open()
    try:
        await store.add_channels([fb])
        await store.add_posts([new_post([fb], text=f"post {i}") for i in range(6)])
        connector = RestartsRedis(fb.platform, world, server, after=2)
        engine = engine_for(store, connector, hourly(3))
        engine._limiter.limiter = limiter
        await drain(engine)
    finally:
        await limiter.aclose()
        await store.close()
        server.stop()
    events = [r.msg for r in caplog.records]
    assert "limits.unavailable" in events
    assert events.count("engine.limits_restored") == 2  # at start, and after the restart
    # Two went out before the restart; the rebuilt limiter counted them: one more, not three.
    assert world.published() == 3
