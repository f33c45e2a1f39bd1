"""A write committed stays committed when its read position cannot be recorded.

With a read replica configured, every write an API key commits is followed by a record of
the primary's WAL position for that key (read-your-writes). That record comes after the
commit: if it fails, the caller must still hear that its write was made, or it would send it
again (a second post). Here the positions' table is gone, so every record fails.
"""

from __future__ import annotations

import logging

import asyncpg
import pytest

from herald import readsession
from herald.domain import Platform
from herald.testing import channel, new_post
from tests.conftest import PG2_URL, PG_URL

pytestmark = pytest.mark.postgres


async def test_a_write_whose_position_is_lost_is_still_made(pg_stores, caplog):
    # The "replica" is the primary itself: only the write path is under test.
    store = await pg_stores.open(replica_url=PG_URL)
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"DROP TABLE {pg_stores.schema}.read_positions")
    finally:
        await conn.close()
    await store.add_channels([linkedin := channel(Platform.LINKEDIN)])
    readsession.act_for("key-1")
    try:
        with caplog.at_level(logging.WARNING, logger="herald.store"):
            made = await store.add_posts([post := new_post([linkedin])])
    finally:
        readsession.act_for(None)
    assert [d.post_id for d in made] == [post.post.id]
    assert (await store.get_post(post.post.id)) is not None  # committed, and said so
    assert any(r.message == "store.read_position_lost" for r in caplog.records)


async def test_a_replica_of_another_cluster_serves_no_read(pg_stores, caplog):
    """database.replica_url pointing at another PostgreSQL server (here the second test
    server, not a standby of the first) would answer listings with another database's rows."""
    with caplog.at_level(logging.ERROR, logger="herald.store"):
        store = await pg_stores.open(replica_url=PG2_URL)
    assert store.replica is not None
    assert store.replica.foreign
    assert not store.replica.status.reachable
    assert not await store.replica.serves(None)
    assert any(r.message == "store.replica_foreign" for r in caplog.records)
    await store.add_channels([linkedin := channel(Platform.LINKEDIN)])
    # Listings are read from the primary, right.
    assert [c.id for c in await store.lagging_reads(store.list_channels)] == [linkedin.id]
