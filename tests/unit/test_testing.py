"""herald.testing is public: users build their own tests on it, so it is tested like the rest."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from herald.domain import Platform
from herald.errors import AuthExpired, OutcomeUnknown, TransientPlatformError
from herald.states import DeliveryState
from herald.stores.memory import MemoryStore
from herald.testing import (
    FakeConnector,
    FakePlatform,
    StaticCredentials,
    channel,
    eventually,
    memory_engine,
    new_post,
)
from herald.testing.platform import COMMIT_THEN_UNKNOWN
from herald.types import PublishRequest


async def test_a_memory_engine_publishes_through_a_fake_connector_once_each():
    world = FakePlatform()
    fb = channel(Platform.FACEBOOK)
    store = MemoryStore()
    await store.add_channels([fb])
    await store.add_posts([new_post([fb]) for _ in range(5)])
    engine = memory_engine(
        {Platform.FACEBOOK: FakeConnector(Platform.FACEBOOK, world)}, store=store
    )
    await asyncio.wait_for(engine.run(burst=True), 10)
    assert world.published() == 5
    assert world.duplicates() == 0
    assert {d.state for d in await store.list_deliveries()} == {DeliveryState.PUBLISHED}


async def test_the_script_decides_each_publish_in_turn():
    world = FakePlatform()
    boom = TransientPlatformError("503")
    conn = FakeConnector(Platform.FACEBOOK, world, script={"x": [boom, COMMIT_THEN_UNKNOWN]})
    fb = channel()
    post = new_post([fb], text="x")
    request = _request(post, fb)
    with pytest.raises(TransientPlatformError):
        await conn.publish(request)
    with pytest.raises(OutcomeUnknown):
        await conn.publish(request)
    assert world.published() == 1  # committed although the answer was lost
    assert (await conn.find(request)) is not None
    await conn.publish(request)  # past the script: publishes
    assert world.duplicates() == 1
    assert [kind for kind, _ in world.calls] == ["publish", "publish", "find", "publish"]


async def test_static_credentials_refuse_the_channels_they_are_told_to():
    ok, refused = channel(), channel()
    creds = StaticCredentials({refused.id}, token="tok")
    assert await creds.resolve(ok) == {"access_token": "tok"}
    with pytest.raises(AuthExpired, match="no token"):
        await creds.resolve(refused)
    creds.forget(refused)
    assert creds.forgotten == [refused.id]


async def test_eventually_waits_for_a_condition_and_gives_up_at_the_deadline():
    flag = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, flag.set)
    await eventually(flag.is_set, within_s=5)

    async def never() -> bool:
        return False

    with pytest.raises(TimeoutError):
        await eventually(never, within_s=0.05)


def _request(post, ch):
    delivery_id = post.deliveries[0].id
    return PublishRequest(
        delivery_id, ch, {"access_token": "t"}, post.post.content, 1, datetime.now(UTC)
    )
