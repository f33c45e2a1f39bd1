"""Slot locks across processes: two store instances on one SQLite file or one PostgreSQL schema
(what two API processes hold) take turns on a channel, and two API apps on one PostgreSQL
schema, asked for free slots at once, hand out distinct ones."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.fernet import Fernet

from herald.api import create_app
from herald.config import Settings
from herald.domain import Platform
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.stores.sqlite import SQLiteStore
from tests.api.conftest import CREDENTIALS
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
