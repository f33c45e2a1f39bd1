"""The engine on an in-memory platform, over the memory and SQLite stores, on virtual time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from herald.domain import Content, NewPost, Platform, Post
from herald.errors import StoreError
from herald.stores.memory import MemoryStore
from herald.testing import FakeConnector, FakePlatform, channel, new_post
from tests.suites.engine import EngineSuite, S, drain, engine_for, settings, states, utcnow

pytestmark = pytest.mark.virtual_time


class TestEngine(EngineSuite):
    pass


async def test_a_store_error_during_admission_does_not_stop_the_lane():
    world = FakePlatform()

    class FlakyStore(MemoryStore):
        failures = 1

        async def apply(self, transitions):
            if self.failures and any(t.target is S.FAILED for t in transitions):
                self.failures -= 1
                raise StoreError("disk full")
            return await super().apply(transitions)

    store = FlakyStore()
    fb = channel()
    await store.add_channels([fb])
    empty = new_post([fb])
    empty = NewPost.at(Post(empty.post.id, Content(text="")), empty.targets, empty.due_at)
    await store.add_posts([empty])  # refused at admission, and that write fails
    ok = [new_post([fb], due_at=utcnow() + timedelta(seconds=0.3)) for _ in range(3)]
    await store.add_posts(ok)
    conn = FakeConnector(Platform.FACEBOOK, world)
    engine = engine_for(store, {Platform.FACEBOOK: conn})
    await drain(engine)  # the writer does not try a refused write again
    assert world.published() == 3  # the lane went on after the failed admission
    got = await states(store)
    # Let go by the lane; the engine released it when it left the registry.
    let_go = [d for d in got.values() if d.state is not S.PUBLISHED]
    assert [(d.post_id, d.state) for d in let_go] == [(empty.post.id, S.SCHEDULED)]
    assert engine.in_flight == 0


async def test_a_free_place_is_claimed_for_even_while_the_held_jobs_wait_on_a_slow_platform():
    """Nearly full, the dispatcher waits for a batch's worth of free places before it claims
    again; but not for ever: a platform whose requests hang holds its jobs for as long as they
    last, and a delivery due on another platform is claimed within a recheck of a place
    freeing, not once the hanging requests end."""
    world = FakePlatform()
    fb, li = channel(Platform.FACEBOOK), channel(Platform.LINKEDIN)
    store = MemoryStore()
    await store.add_channels([fb, li])
    early = utcnow() - timedelta(seconds=2)
    await store.add_posts([new_post([fb], due_at=early) for _ in range(3)])
    await store.add_posts([new_post([li], due_at=early, text="quick")])
    late = new_post([li], due_at=utcnow() - timedelta(seconds=1), text="late")
    await store.add_posts([late])
    hanging = FakeConnector(Platform.FACEBOOK, world, latency_s=3600.0)
    quick = FakeConnector(Platform.LINKEDIN, world)
    cfg = settings(max_in_flight=4)  # claims again once 2 places are free
    engine = engine_for(store, {Platform.FACEBOOK: hanging, Platform.LINKEDIN: quick}, cfg)
    task = asyncio.create_task(engine.run())
    try:
        # The first claim takes the hanging three and "quick"; "quick" frees a place at once.
        await world.wait_until(lambda: world.listed(li.external_id, "late") != [], 10.0)
        assert hanging.in_flight == 3  # not a place freed by the hanging platform
    finally:
        engine.request_stop()
        await asyncio.wait_for(task, 10)
