"""Several engines on one PostgreSQL database: claims, leases, crashes, wake-ups, errors.

Each "engine" is a store with a pool of its own, as separate processes would have; they share
the test's schema. Time is passed explicitly (``now``), so lease expiry needs no waiting.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import asyncpg
import pytest

from herald.domain import Transition, utcnow
from herald.errors import InvalidInput, StoreError
from herald.states import DeliveryState
from herald.stores.postgres import PostgresStore
from herald.testing import channel, new_post
from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres

S = DeliveryState
LEASE = timedelta(seconds=30)


async def claim(store, now, limit=100):
    return await store.claim_due(
        now=now, limit=limit, lease_until=now + LEASE, expire_before=now - timedelta(days=1)
    )


async def seed(store, count, channels=20):
    chans = [channel() for _ in range(channels)]
    await store.add_channels(chans)
    posts = [new_post([chans[i % channels]]) for i in range(count)]
    await store.add_posts(posts)
    return [p.targets[0][0] for p in posts]


async def test_engines_claiming_at_once_never_share_nor_skip(pg_stores):
    engines = [await pg_stores.open(pool_size=3) for _ in range(4)]
    ids = await seed(engines[0], 5000)
    now = utcnow()
    claimed_by: dict[int, list[str]] = {i: [] for i in range(len(engines))}

    async def dispatcher(i, store):
        # Like Dispatcher.run: claim batches until a claim comes back empty.
        while jobs := (await claim(store, now, limit=97)).jobs:
            claimed_by[i].extend(j.delivery.id for j in jobs)

    await asyncio.gather(*(dispatcher(i, s) for i, s in enumerate(engines) for _ in range(3)))
    everything = [d for got in claimed_by.values() for d in got]
    assert len(everything) == len(set(everything)) == 5000  # never twice
    assert set(everything) == set(ids)  # none skipped
    assert sum(1 for got in claimed_by.values() if got) >= 2  # they really did compete
    assert await engines[1].count_by_state() == {S.CLAIMED: 5000}
    assert await engines[2].next_due_at() is None


async def test_a_dead_engines_leases_are_recovered_by_another(pg_stores):
    a, b = await pg_stores.open(), await pg_stores.open()
    await seed(a, 20, channels=4)
    t0 = utcnow()
    mine_a = (await claim(a, t0, limit=10)).jobs
    mine_b = (await claim(b, t0, limit=10)).jobs
    assert not {j.delivery.id for j in mine_a} & {j.delivery.id for j in mine_b}
    sent = mine_a[:4]
    sending = [
        Transition(
            j.delivery.id,
            S.PUBLISHING,
            claim_token=j.claim_token,
            lease_until=t0 + LEASE,
            sent=True,
            check_first=False,
            check_since=t0,
        )
        for j in sent
    ]
    assert await a.apply(sending) == [True] * 4
    # Engine B's lease keeper renews its own claims; engine A has stopped renewing (dead).
    later = t0 + LEASE + timedelta(seconds=1)
    assert await b.extend_leases([mine_b[0].claim_token], later + LEASE) == 10
    assert await b.recover_expired_leases(later) == 10
    # A's deliveries are back: the ones it may have sent must be looked up first.
    after = {j.delivery.id: await b.get_delivery(j.delivery.id) for j in mine_a}
    for job in sent:
        got = after[job.delivery.id]
        assert (got.state, got.check_first, got.check_since) == (S.UNCONFIRMED, True, t0)
    for job in mine_a[4:]:
        assert after[job.delivery.id].state is S.SCHEDULED
    # B's own claims were left alone, and B now takes A's work over.
    assert await b.count_by_state() == {S.CLAIMED: 10, S.UNCONFIRMED: 4, S.SCHEDULED: 6}
    retaken = (await claim(b, later, limit=50)).jobs
    assert {j.delivery.id for j in retaken} == {j.delivery.id for j in mine_a}
    assert sum(j.delivery.check_first for j in retaken) == 4
    # Should A wake up, its stale claim can no longer write anything.
    stale = Transition(sent[0].delivery.id, S.PUBLISHED, claim_token=sent[0].claim_token)
    assert await a.apply([stale]) == [False]


async def test_a_crashed_engines_publishing_deliveries_become_unconfirmed(pg_stores):
    crashed = await pg_stores.open()
    await seed(crashed, 6, channels=2)
    t0 = utcnow()
    jobs = (await claim(crashed, t0)).jobs
    on_the_wire = jobs[:3]
    await crashed.apply(
        [
            Transition(j.delivery.id, S.PUBLISHING, claim_token=j.claim_token, sent=True)
            for j in on_the_wire
        ]
    )
    await crashed.close()  # the process is gone: nobody renews its leases
    survivor = await pg_stores.open()
    assert await survivor.recover_expired_leases(t0 + LEASE / 2) == 0  # not expired yet
    assert await survivor.recover_expired_leases(t0 + LEASE * 2) == 6
    states = Counter()
    for job in jobs:
        got = await survivor.get_delivery(job.delivery.id)
        states[got.state] += 1
        if job in on_the_wire:
            assert got.state is S.UNCONFIRMED
            assert got.check_first
            assert got.attempts == 1
        else:
            assert got.state is S.SCHEDULED
            assert not got.check_first
    assert states == {S.UNCONFIRMED: 3, S.SCHEDULED: 3}


async def test_recovery_skips_rows_a_live_transaction_holds(pg_stores):
    store = await pg_stores.open()
    await seed(store, 2, channels=1)
    t0 = utcnow()
    held, free = (await claim(store, t0)).jobs
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": pg_stores.schema})
    try:
        async with conn.transaction():
            lock = "SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE"
            await conn.execute(lock, held.delivery.id)
            # Recovery neither waits for the holder nor takes its row.
            recovered = await asyncio.wait_for(store.recover_expired_leases(t0 + LEASE * 2), 5)
            assert recovered == 1
    finally:
        await conn.close()
    assert (await store.get_delivery(held.delivery.id)).state is S.CLAIMED
    assert (await store.get_delivery(free.delivery.id)).state is S.SCHEDULED
    assert await store.recover_expired_leases(t0 + LEASE * 2) == 1


async def test_processes_starting_at_once_migrate_once(pg_schema):
    stores = [PostgresStore(PG_URL, schema=pg_schema, pool_size=2) for _ in range(5)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        conn = await asyncpg.connect(PG_URL)
        try:
            versions = await conn.fetch(f"SELECT version FROM {pg_schema}.schema_migrations")
        finally:
            await conn.close()
        assert len(versions) == len({r[0] for r in versions}) >= 1
        await stores[0].add_channels([channel()])
        assert len(await stores[4].list_channels()) == 1
    finally:
        for s in stores:
            await s.close()


async def test_posts_added_elsewhere_wake_a_listener(pg_stores):
    engine, api = await pg_stores.open(), await pg_stores.open()
    woken: asyncio.Queue = asyncio.Queue()
    listener = await engine.listen(woken.put_nowait)
    c = channel()
    await api.add_channels([c])
    due = utcnow() + timedelta(minutes=5)
    await api.add_posts([new_post([c], due_at=due), new_post([c], due_at=due + LEASE)])
    assert await asyncio.wait_for(woken.get(), 5) == due
    # The listening connection drops: it comes back and says something may have been missed.
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            " AND application_name = 'herald' AND backend_type = 'client backend'"
            f" AND query LIKE '%{engine.notify_channel}%'"
        )
    finally:
        await admin.close()
    assert await asyncio.wait_for(woken.get(), 10) is None
    assert listener.reconnects == 1
    await api.add_posts([new_post([c], due_at=due)])
    assert await asyncio.wait_for(woken.get(), 5) == due
    await listener.close()


async def test_driver_errors_are_translated_with_their_cause(pg_stores):
    store = await pg_stores.open()
    c = channel()
    await store.add_channels([c])
    with pytest.raises(InvalidInput) as conflict:
        await store.add_channels([c])
    assert isinstance(conflict.value.__cause__, asyncpg.UniqueViolationError)
    unreachable = PostgresStore("postgresql://postgres@127.0.0.1:1/test", schema="nowhere")
    unreachable._db.open_timeout_s = 0.5  # it waits for a database that is away: not this long
    with pytest.raises(StoreError) as down:
        await unreachable.open()
    assert isinstance(down.value.__cause__, OSError)
