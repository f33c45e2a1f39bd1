"""PostgreSQL adoption (``adopt_claims``) under concurrency: each claim adopted once among
workers adopting overlapping bundles; a claim taken again under a new token while an adoption
waits for it is not adopted; and a stale bundle (redelivered, or put again) that names rows
another worker adopted and is writing neither waits on that worker's writer nor deadlocks with
it (the writer may take a higher id before a lower one in one transaction): only rows that
pass the token test are locked."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest

from herald.domain import utcnow
from herald.errors import StoreUnavailable
from tests.conftest import PG_URL
from tests.integration.test_postgres_claims import claim, seed

pytestmark = pytest.mark.postgres
HOUR = timedelta(hours=1)


async def test_concurrent_adoptions_of_one_bundle_adopt_each_claim_once(pg_stores):
    stores = [await pg_stores.open() for _ in range(4)]
    await seed(stores[0], 300)
    now = utcnow()
    jobs = (await claim(stores[0], now, limit=300)).jobs
    offered = [(j.delivery.id, j.claim_token) for j in jobs]
    results = await asyncio.gather(
        *(
            s.adopt(offered[::k] if k else offered, engine_id=f"w{i}{k}", lease_until=now + HOUR)
            for i, s in enumerate(stores)
            for k in (0, 1, 2, 3)
        )
    )
    won = [d for r in results for d in r.delivery_ids]
    assert len(won) == len(set(won)) == 300


async def test_a_claim_reclaimed_while_the_adoption_waits_is_not_adopted(pg_stores):
    store = await pg_stores.open()
    await seed(store, 2, channels=1)
    now = utcnow()
    (a, b) = (await claim(store, now, limit=2)).jobs
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": pg_stores.schema})
    try:
        tx = conn.transaction()
        await tx.start()
        # The sweeper: recovered and claimed again under a new token, not yet committed.
        await conn.execute(
            "UPDATE deliveries SET claim_token = 'swept' WHERE id = $1", b.delivery.id
        )
        adopting = asyncio.create_task(
            store.adopt(
                [(a.delivery.id, a.claim_token), (b.delivery.id, b.claim_token)],
                engine_id="w",
                lease_until=now + HOUR,
            )
        )
        await asyncio.sleep(0.3)
        assert not adopting.done()  # waits for the sweeper's lock
        await tx.commit()
        assert (await adopting).delivery_ids == {a.delivery.id}
    finally:
        await conn.close()


async def test_adopting_a_stale_bundle_neither_waits_on_nor_deadlocks_with_its_owners_writer(
    pg_stores,
):
    store = await pg_stores.open()
    await seed(store, 2, channels=1)
    now = utcnow()
    jobs = sorted((await claim(store, now, limit=2)).jobs, key=lambda j: j.delivery.id)
    lo, hi = jobs
    offered = [(j.delivery.id, j.claim_token) for j in jobs]
    owner = await store.adopt(offered, engine_id="w2", lease_until=now + HOUR)  # W2 took them
    assert owner.delivery_ids == {lo.delivery.id, hi.delivery.id}
    writer = await asyncpg.connect(PG_URL, server_settings={"search_path": pg_stores.schema})
    try:
        tx = writer.transaction()
        await tx.start()
        guarded = "UPDATE deliveries SET updated_at = now() WHERE id = $1 AND claim_token = $2"
        await writer.execute(guarded, hi.delivery.id, owner.claim_token)  # round 1: {hi}
        # W1 got a stale copy of the bundle (redelivered / re-put) and adopts it.
        stale = asyncio.create_task(store.adopt(offered, engine_id="w1", lease_until=now + HOUR))
        await asyncio.sleep(0.3)
        waited = not stale.done()
        writer_error = None
        try:  # round 2: {lo, hi}
            await asyncio.wait_for(writer.execute(guarded, lo.delivery.id, owner.claim_token), 5)
            await tx.commit()
        except asyncpg.PostgresError as exc:
            writer_error = type(exc).__name__
            await tx.rollback()
        try:
            adopt_result = (await stale).delivery_ids
        except StoreUnavailable as exc:
            adopt_result = f"StoreUnavailable: {exc}"
    finally:
        await writer.close()
    got = (waited, writer_error, adopt_result)
    assert got == (False, None, frozenset()), got
