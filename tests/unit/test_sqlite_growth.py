"""Adding posts to a big SQLite store writes no more pages than adding them to a small one.

Every page a transaction changes is written to the WAL (and fsynced with it, then copied into
the file by a checkpoint). With random ids each new row of an index keyed by an id landed on a
random page: a batch of 1,000 deliveries rewrote about as many pages of each such index as it
had, 20 times more on a table of 20,000 than on one of 1,000, and the insert rate fell as the
tables grew. The test counts the pages of the id-keyed b-trees in the WAL after one batch,
which depends on where rows go, not on how fast the machine is. The indexes keyed by due time
(``deliveries_due``, ``deliveries_stale``, ``deliveries_channel_due``) are left out: posts
fall due in the order their authors choose, not in the order they are written.
"""

from __future__ import annotations

import random
import sqlite3
import struct
from collections import Counter
from datetime import timedelta
from pathlib import Path

from herald.domain import Content, NewPost, Platform, Post, new_id, utcnow
from herald.stores.sqlite import SQLiteStore
from herald.testing import channel

BATCH = 500  # posts of two deliveries: 1,000 deliveries a batch
# The b-trees a new post and its deliveries go into by id (tables are rowid tables: their
# rows append whatever the id; their id lookups go through these).
ID_KEYED = (
    "sqlite_autoindex_deliveries_1",  # deliveries (id)
    "deliveries_post",  # (post_id)
    "deliveries_state",  # (state, id)
    "sqlite_autoindex_posts_1",  # posts (id)
)


def _posts(channels: list[str], count: int, rng: random.Random) -> list[NewPost]:
    start = utcnow() + timedelta(days=1)
    return [
        NewPost.at(
            Post(new_id("post"), Content(text="later")),
            [(new_id("dlv"), c) for c in rng.sample(channels, 2)],
            start + timedelta(seconds=rng.uniform(0, 30 * 86400)),
        )
        for _ in range(count)
    ]


def _wal_pages(path: Path) -> set[int]:
    """The page numbers the WAL holds frames of (header: 32 bytes; frames: 24 + page)."""
    wal = (path.parent / (path.name + "-wal")).read_bytes()
    page_size = struct.unpack(">I", wal[8:12])[0]
    frame = 24 + page_size
    return {struct.unpack(">I", wal[at : at + 4])[0] for at in range(32, len(wal), frame)}


def _pages_by_btree(path: Path, pages: set[int]) -> Counter[str]:
    with sqlite3.connect(path) as conn:
        owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
    return Counter(owner.get(page, "?") for page in pages)


async def _written(store: SQLiteStore, path: Path, posts: list[NewPost]) -> Counter[str]:
    """Pages of each b-tree one add_posts call writes, the WAL emptied first."""
    with sqlite3.connect(path) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0
    await store.add_posts(posts)
    return _pages_by_btree(path, _wal_pages(path))


async def test_a_batch_writes_as_many_id_index_pages_on_a_big_table_as_on_a_small_one(tmp_path):
    path = tmp_path / "growth.db"
    rng = random.Random(7)
    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()
    try:
        channels = [channel(Platform.FACEBOOK, id=new_id("ch")) for _ in range(20)]
        await store.add_channels(channels)
        ids = [c.id for c in channels]
        await store.add_posts(_posts(ids, BATCH, rng))  # 1,000 deliveries stored
        small = await _written(store, path, _posts(ids, BATCH, rng))
        for _ in range(18):  # 20,000 deliveries stored
            await store.add_posts(_posts(ids, BATCH, rng))
        big = await _written(store, path, _posts(ids, BATCH, rng))
    finally:
        await store.close()
    for name in ID_KEYED:
        # New rows at the right edge: a 1,000-row batch fills about ten leaves of each, on
        # any table. Random ids wrote 15-25 times more on the big one.
        assert 0 < big[name] <= 1.5 * small[name] + 3, (name, small[name], big[name])
