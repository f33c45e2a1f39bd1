"""Slot locks across processes: two store instances on one SQLite file or one PostgreSQL schema
(what two API processes hold) take turns on a channel, and two API apps on one PostgreSQL
schema, asked for free slots at once, hand out distinct ones."""

from __future__ import annotations

import asyncio
import fcntl
import os
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet

from herald.api import create_app
from herald.config import Settings
from herald.domain import Platform, utcnow
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.stores.sqlite import SQLiteStore
from tests.api.conftest import CREDENTIALS
from tests.conftest import PG_URL, opened_store
from tests.suites.catalog_contract import hold, slot_lock_turns

NOW = datetime(2030, 3, 27, 12, 0, tzinfo=UTC)


async def test_two_sqlite_stores_on_one_file_take_turns(tmp_path):
    one = SQLiteStore(tmp_path / "herald.db", synchronous="NORMAL")
    other = SQLiteStore(tmp_path / "herald.db", synchronous="NORMAL")
    await one.open()
    await other.open()
    try:
        await slot_lock_turns(one, other)
    finally:
        await one.close()
        await other.close()


async def test_a_wait_cancelled_in_another_process_leaves_no_lock(tmp_path):
    """The second store waits in the file lock (a thread, which cannot be cancelled): the lock
    it gets after its task was cancelled is let go, not kept for good."""
    one = SQLiteStore(tmp_path / "herald.db", synchronous="NORMAL")
    other = SQLiteStore(tmp_path / "herald.db", synchronous="NORMAL")
    await one.open()
    await other.open()
    try:
        async with one.slot_lock(["ch_a"]):
            waiting = asyncio.create_task(hold(other, ["ch_a"]))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        async with asyncio.timeout(5), one.slot_lock(["ch_a"]):
            pass  # kept by the cancelled waiter's thread, this would never come
    finally:
        await one.close()
        await other.close()


async def test_after_a_cancelled_wait_the_next_holder_still_excludes_other_processes(tmp_path):
    """A cancelled wait leaves a thread blocked in ``flock``; the next holder's lock must not
    be undone when that thread's lock is let go."""
    store = SQLiteStore(tmp_path / "h.db", synchronous="NORMAL")
    await store.open()
    other = os.open(f"{tmp_path / 'h.db'}.slots.lock", os.O_RDWR | os.O_CREAT)  # a process
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        first = asyncio.create_task(hold(store, ["ch"]))
        await asyncio.sleep(0.1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        inside, leave = asyncio.Event(), asyncio.Event()

        async def second() -> None:
            async with store.slot_lock(["ch"]):
                inside.set()
                await leave.wait()

        task = asyncio.create_task(second())
        await asyncio.sleep(0.1)
        fcntl.flock(other, fcntl.LOCK_UN)
        await asyncio.wait_for(inside.wait(), 5)
        await asyncio.sleep(0.2)  # the cancelled wait's thread got the lock and let it go
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        leave.set()
        await task
    finally:
        os.close(other)
        await store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_reschedule_to_a_free_slot_reads_its_delivery_under_the_lock(kind, tmp_path):
    """Queued behind the lock: a create, then a free-slot move of post P; meanwhile P is moved
    to a fixed time (no lock), freeing slot S1, which the create takes. The free-slot move must
    not count S1 as P's own any more."""
    async with opened_store(kind, tmp_path) as store:
        issued = await Tenancy(store).create_workspace("Slots")
        app = create_app(_settings(), store, validators=VALIDATORS)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://herald.test",
            headers={"Authorization": f"Bearer {issued.token}"},
        ) as client:
            channel_id = await _slotted_channel(client, ("monday", "wednesday", "friday"))
            body = {"channel_ids": [channel_id], "content": {"text": "x"}, "next_free_slot": True}
            post = (await client.post("/v1/posts", json=body)).json()
            async with store.slot_lock([channel_id]):
                create = asyncio.create_task(client.post("/v1/posts", json=body))
                await asyncio.sleep(0.1)
                move = asyncio.create_task(
                    client.post(f"/v1/posts/{post['id']}/reschedule", json={"next_free_slot": True})
                )
                await asyncio.sleep(0.1)
                far = (utcnow() + timedelta(days=20)).isoformat()
                fixed = await client.post(
                    f"/v1/posts/{post['id']}/reschedule", json={"scheduled_at": far}
                )
                assert fixed.status_code == 200, fixed.text
            created, moved = await create, await move
            assert (created.status_code, moved.status_code) == (201, 200)
            assert (
                created.json()["deliveries"][0]["scheduled_at"]
                != moved.json()["deliveries"][0]["scheduled_at"]
            )


@pytest.mark.postgres
async def test_a_slot_lock_that_cannot_be_undone_does_not_fail_a_stored_post(pg_stores):
    """The session holding the lock ends after the post was written: the answer is the post
    (a 5xx would make the client retry and post twice), and the lock is gone with the session."""
    store = await pg_stores.open()
    issued = await Tenancy(store).create_workspace("Slots")
    app = create_app(_settings(), store, validators=VALIDATORS)
    add_posts = store.add_posts

    async def add_then_end_the_lock_session(posts):
        added = await add_posts(posts)
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'herald-slots' AND query LIKE '%advisory_lock%'"
            )
        finally:
            await conn.close()
        await asyncio.sleep(0.2)
        return added

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://herald.test",
        headers={"Authorization": f"Bearer {issued.token}"},
    ) as client:
        channel_id = await _slotted_channel(client, ("monday",))
        store.add_posts = add_then_end_the_lock_session
        body = {"channel_ids": [channel_id], "content": {"text": "x"}, "next_free_slot": True}
        answer = await client.post("/v1/posts", json=body)
        store.add_posts = add_posts
        assert answer.status_code == 201, answer.text
        async with asyncio.timeout(5), store.slot_lock([channel_id]):
            pass


@pytest.mark.postgres
async def test_two_postgres_stores_on_one_schema_take_turns(pg_stores):
    one, other = await pg_stores.open(), await pg_stores.open()
    await slot_lock_turns(one, other)
    log: list[str] = []
    async with asyncio.timeout(10):
        await asyncio.gather(
            hold(one, ["ch_x"], log, "1", 0.3), hold(other, ["ch_y"], log, "2", 0.3)
        )
    assert [entry[1] for entry in log] == ["+", "+", "-", "-"]  # disjoint channels: at once


@pytest.mark.postgres
async def test_two_api_processes_hand_out_distinct_slots(pg_stores):
    settings = Settings(secret_keys=[Fernet.generate_key().decode()], api={"key_requests_per_s": 0})
    stores = [await pg_stores.open(), await pg_stores.open()]
    issued = await Tenancy(stores[0]).create_workspace("Slots")
    auth = {"Authorization": f"Bearer {issued.token}"}
    clients = [
        httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=create_app(settings, s, validators=VALIDATORS, clock=lambda: NOW)
            ),
            base_url="http://herald.test",
            headers=auth,
        )
        for s in stores
    ]
    try:
        channel = {
            "platform": "facebook",
            "external_id": "page-1",
            "name": "Page",
            "timezone": "Europe/Paris",
            "credentials": CREDENTIALS[Platform.FACEBOOK],
        }
        made = await clients[0].post("/v1/channels", json=channel)
        assert made.status_code == 201, made.text
        channel_id = made.json()["id"]
        slots = [{"day": d, "time": "09:00"} for d in ("monday", "thursday")]
        schedule = await clients[1].put(
            f"/v1/channels/{channel_id}/schedule", json={"slots": slots}
        )
        assert schedule.status_code == 200, schedule.text
        body = {"channel_ids": [channel_id], "content": {"text": "x"}, "next_free_slot": True}
        answers = await asyncio.gather(
            *(clients[i % 2].post("/v1/posts", json=body) for i in range(10))
        )
        assert [a.status_code for a in answers] == [201] * 10
        times = [a.json()["deliveries"][0]["scheduled_at"] for a in answers]
        assert len(set(times)) == 10, sorted(times)
    finally:
        for client in clients:
            await client.aclose()


def _settings() -> Settings:
    return Settings(secret_keys=[Fernet.generate_key().decode()], api={"key_requests_per_s": 0})


async def _slotted_channel(client: httpx.AsyncClient, days: tuple[str, ...]) -> str:
    made = await client.post(
        "/v1/channels",
        json={
            "platform": "facebook",
            "external_id": "page-1",
            "name": "Page",
            "timezone": "Europe/Paris",
            "credentials": CREDENTIALS[Platform.FACEBOOK],
        },
    )
    assert made.status_code == 201, made.text
    channel_id: str = made.json()["id"]
    slots = [{"day": d, "time": "09:00"} for d in days]
    answer = await client.put(f"/v1/channels/{channel_id}/schedule", json={"slots": slots})
    assert answer.status_code == 200, answer.text
    return channel_id
