"""herald.testing is public: users build their own tests on it, so it is tested like the rest."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from herald.domain import Platform
from herald.errors import AuthExpired, OutcomeUnknown, TransientPlatformError
from herald.states import DeliveryState
from herald.stores.memory import MemoryStore
from herald.testing import (
    FakeConnector,
    FakePlatform,
    StaticCredentials,
    VirtualClock,
    VirtualTimeLoop,
    channel,
    eventually,
    memory_engine,
    new_post,
    running_clock,
)
from herald.testing.platform import COMMIT_THEN_UNKNOWN
from herald.timing import SystemClock
from herald.types import PublishRequest


@pytest.mark.virtual_time
async def test_a_memory_engine_publishes_through_a_fake_connector_once_each():
    world = FakePlatform()
    fb = channel(Platform.FACEBOOK)
    store = MemoryStore()
    await store.add_channels([fb])
    await store.add_posts([new_post([fb]) for _ in range(5)])
    engine = memory_engine(
        {Platform.FACEBOOK: FakeConnector(Platform.FACEBOOK, world)}, store=store
    )
    assert engine.clock.now() == asyncio.get_running_loop().clock.now()  # virtual time
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


@pytest.mark.virtual_time
async def test_virtual_time_jumps_to_the_next_timer_once_nothing_can_run():
    loop = asyncio.get_running_loop()
    clock = running_clock()
    assert isinstance(loop, VirtualTimeLoop)
    assert clock.now() == loop.clock.now()
    wall, start, real = clock.now(), loop.time(), time.perf_counter()
    woke: list[tuple[str, float]] = []

    async def sleep(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        woke.append((name, loop.time() - start))

    await asyncio.gather(sleep("an hour", 3600), sleep("a second", 1))
    assert woke == [("a second", 1.0), ("an hour", 3600.0)]
    # The wall clock moved with the loop: an hour, in (much) less than a second of real time.
    assert clock.now() - wall == timedelta(hours=1)
    assert clock.time() == pytest.approx(wall.timestamp() + 3600)
    assert clock.monotonic() - start == 3600
    assert time.perf_counter() - real < 1.0


@pytest.mark.virtual_time
async def test_virtual_time_stands_still_while_a_thread_works():
    loop = asyncio.get_running_loop()
    start = loop.time()
    # A timeout ten virtual seconds away must not fire over a thread's result on its way
    # (the SQLite store runs every call on a thread): the loop waits for it in real time.
    slept = await asyncio.wait_for(loop.run_in_executor(None, time.sleep, 0.05), 10)
    assert slept is None
    assert loop.time() == start
    await asyncio.wait_for(asyncio.to_thread(time.sleep, 0.05), 10)
    assert loop.time() == start


@pytest.mark.virtual_time
async def test_virtual_time_waits_for_an_executor_to_shut_down():
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(executor)
    executor.submit(time.sleep, 0.05)  # work the loop was never told about
    # Python 3.12+ joins the threads under a timeout: it must not be jumped to.
    await asyncio.wait_for(loop.shutdown_default_executor(), 300)
    assert loop.time() < 300


async def test_the_running_clock_is_the_system_s_on_a_real_time_loop():
    assert not isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
    assert abs(running_clock().time() - SystemClock().time()) < 1


def test_a_virtual_clock_starts_at_an_aware_time():
    loop = VirtualTimeLoop(start=datetime(2030, 1, 1, 12, tzinfo=UTC))
    try:
        assert loop.clock.now() == datetime(2030, 1, 1, 12, tzinfo=UTC)
        with pytest.raises(ValueError, match="aware"):
            VirtualClock(loop, datetime(2030, 1, 1, 12))
    finally:
        loop.close()


def _request(post, ch):
    delivery_id = post.deliveries[0].id
    return PublishRequest(
        delivery_id, ch, {"access_token": "t"}, post.post.content, 1, datetime.now(UTC)
    )


def test_an_engine_built_outside_any_loop_reads_the_virtual_time_it_runs_on():
    """A synchronous fixture builds the engine; the test then runs it on virtual time: its
    clock must follow the loop it runs on, not the one (none) it was built under."""
    world, fb, store = FakePlatform(), channel(), MemoryStore()
    engine = memory_engine({fb.platform: FakeConnector(fb.platform, world)}, store=store)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        await store.add_channels([fb])
        due = loop.clock.now() + timedelta(seconds=3)  # type: ignore[attr-defined]
        await store.add_posts([new_post([fb], due_at=due)])
        started = loop.time()
        await asyncio.wait_for(engine.run(burst=True, burst_horizon_s=10), 60)
        return loop.time() - started

    real = time.monotonic()
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        waited = runner.run(scenario())
    assert world.published() == 1
    assert 3 <= waited < 60  # the due time was waited for, in virtual seconds
    assert time.monotonic() - real < 5


def test_a_misspelt_script_step_is_refused_rather_than_published():
    with pytest.raises(ValueError, match="unknown script steps"):
        FakeConnector(Platform.FACEBOOK, FakePlatform(), script={"x": ["commit-then-unknwn"]})
