"""A real streaming replica under the API: lag under a publishing load, read-your-writes.

The test's own primary and standby (tests/integration/pg_replica_rig.py). Through the API:
an API key that just wrote lists its write even while the replica is paused behind it, on the
API node it wrote through and on another one, and another key's listing (same workspace)
comes from the replica (it does not show that write
yet, and does once replay resumes). A replica further behind than ``replica_max_lag_s``
serves nothing. Then the engine publishes to the simulator on the primary while API writes
come in; the replica's lag is sampled throughout (the time from a WAL position on the
primary to its replay on the standby) and must stay under the roadmap's 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet

from herald.api import create_app
from herald.bootstrap import running_engine
from herald.config import Settings
from herald.domain import Platform
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.simulator import Simulator
from herald.stores.postgres import PostgresStore
from herald.testing import eventually
from tests.api.conftest import Tenant
from tests.integration.pg_replica_rig import ReplicaPair, replica_pair
from tests.integration.test_pipeline import sim_config
from tests.integration.test_postgres_pipeline import assert_each_published_once, pg_pipeline

pytestmark = pytest.mark.postgres

#: The roadmap's bound on how far a replica may be behind.
ROADMAP_LAG_S = 30.0
PER_CHANNEL = 140  # within LinkedIn's 150 posts a member a day
#: On the standby: whether it has replayed the primary's WAL up to a position.
REPLAYED = "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn"


@pytest.fixture
def pair():
    with replica_pair() as running:
        yield running


@pytest.fixture
async def api(pair: ReplicaPair):
    """Two API nodes on the pair (as behind a load balancer: a store, a replica cache and an
    app each): the primary, and the replica for reads that may lag."""
    settings = Settings(
        database_url=pair.primary.url,
        secret_keys=[Fernet.generate_key().decode()],
        api={"key_requests_per_s": 0},
        database={"replica_url": pair.standby.url, "replica_check_s": 0.1},
    )
    async with contextlib.AsyncExitStack() as nodes:
        yield [await nodes.enter_async_context(_node(settings)) for _ in range(2)]


@contextlib.asynccontextmanager
async def _node(settings: Settings):
    store = PostgresStore(
        settings.database_url,
        replica_url=settings.database.replica_url,
        replica_check_s=settings.database.replica_check_s,
    )
    await store.open()
    app = create_app(settings, store, validators=VALIDATORS)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
            yield store, client
    finally:
        await app.state.services.imports.runner.close()
        await store.close()


async def two_keys(store, client) -> tuple[Tenant, Tenant]:
    """Two API keys of one workspace: what one writes, the other may read."""
    tenancy = Tenancy(store)
    first = await tenancy.create_workspace("Acme")
    second = await tenancy.issue_key(first.key.workspace_id, "second key")
    return (
        Tenant(first.key.workspace_id, first.token, client),
        Tenant(first.key.workspace_id, second.token, client),
    )


async def listed(tenant: Tenant) -> set[str]:
    response = await tenant.get("/v1/posts", params={"limit": 200})
    assert response.status_code == 200, response.text
    return {p["id"] for p in response.json()["items"]}


async def exported(tenant: Tenant) -> str:
    response = await tenant.get("/v1/posts/export")
    assert response.status_code == 200, response.text
    return response.text


async def replay(pair: ReplicaPair, action: str) -> None:
    conn = await asyncpg.connect(pair.standby.url)
    try:
        await conn.execute(f"SELECT pg_wal_replay_{action}()")
    finally:
        await conn.close()


async def test_a_key_reads_its_writes_while_the_replica_lags(pair, api):
    (store, client), (other_store, other_node) = api
    writer, reader = await two_keys(store, client)
    # The writer's next request may reach another API node.
    writer_elsewhere = Tenant(writer.workspace_id, writer.token, other_node)
    reader = Tenant(reader.workspace_id, reader.token, other_node)
    channel = await writer.channel(Platform.FACEBOOK)
    before = await writer.post_on([channel])
    # The replica catches up first: the reader is served, and sees the first post.
    await eventually(lambda: _has(reader, before["id"]), within_s=10)

    await replay(pair, "pause")
    try:
        written = await writer.post_on([channel])
        # The writer sees its post (the primary answered it: the replica is behind it)...
        assert written["id"] in await listed(writer)
        assert written["id"] in await listed(writer_elsewhere)
        assert written["id"] in await exported(writer_elsewhere)
        # ...while the other key is served by the replica, which has not replayed it.
        assert other_store.replica is not None
        assert other_store.replica.status.reachable
        assert before["id"] in await listed(reader)
        assert written["id"] not in await listed(reader)
        assert written["id"] not in await exported(reader)
    finally:
        await replay(pair, "resume")
    # Once replayed, the replica serves it to everyone.
    await eventually(lambda: _has(reader, written["id"]), within_s=10)


async def _has(tenant: Tenant, post_id: str) -> bool:
    return post_id in await listed(tenant)


async def test_a_replica_behind_or_away_serves_nothing(pair):
    store = PostgresStore(
        pair.primary.url, replica_url=pair.standby.url, replica_max_lag_s=1.0, replica_check_s=0.1
    )
    await store.open()
    admin = await asyncpg.connect(pair.primary.url)
    try:
        replica = store.replica
        assert replica is not None
        await admin.execute("CREATE TABLE marks (n int)")
        await admin.execute("INSERT INTO marks VALUES (1)")
        await eventually(lambda: replica.serves(None), within_s=10)
        await replay(pair, "pause")
        try:
            await admin.execute("INSERT INTO marks VALUES (2)")  # received, not replayed
            await eventually(_not(replica.serves), within_s=10)
            assert replica.status.reachable
            assert replica.status.lag_s > 1.0
        finally:
            await replay(pair, "resume")
        await eventually(lambda: replica.serves(None), within_s=10)
        # Away: the reads that may lag are the primary's, and answered.
        pair.stop(pair.standby, "immediate")
        await eventually(_not(replica.serves), within_s=10)
        assert not replica.status.reachable
        assert await store.lagging_reads(lambda: store.list_posts("no-such-workspace")) == []
    finally:
        await admin.close()
        await store.close()


async def test_a_replica_lost_after_its_check_has_its_reads_answered_by_the_primary(pair):
    # Checked once and found fresh, then gone before the next check (60 s away): the listing
    # routed to it is read again from the primary, and the replica is counted away.
    store = PostgresStore(pair.primary.url, replica_url=pair.standby.url, replica_check_s=60.0)
    await store.open()
    try:
        replica = store.replica
        assert replica is not None
        tenancy = Tenancy(store)
        made = await tenancy.create_workspace("Acme")
        await eventually(lambda: replica.serves(None), within_s=10)
        # The replica has the workspace: a read routed to it now would find it there.
        assert await replica.serves(None)
        pair.stop(pair.standby, "immediate")
        found = await store.lagging_reads(lambda: store.get_workspace(made.key.workspace_id))
        assert found.id == made.key.workspace_id
        assert not replica.status.reachable
        assert not await replica.serves(None)  # the next requests do not try it
    finally:
        await store.close()


def _not(check):
    async def negated() -> bool:
        return not await check(None)

    return negated


async def test_replication_lag_under_a_publishing_load(pair, tmp_path, capsys):
    async with Simulator(sim_config()) as sim:
        store = PostgresStore(pair.primary.url, pool_size=8)
        await store.open()
        try:
            pipe = pg_pipeline(sim, tmp_path, store)
            platforms = (Platform.FACEBOOK, Platform.LINKEDIN)  # quotas above PER_CHANNEL
            channels = [await pipe.channel(p) for p in platforms for _ in range(2)]
            total = PER_CHANNEL * len(channels)
            samples: list[float] = []
            stop = asyncio.Event()
            sampling = asyncio.create_task(_sample_lag(pair, samples, stop))
            started = time.monotonic()
            async with running_engine(pipe.settings, store) as engine:
                running = asyncio.create_task(engine.run())
                try:
                    # Posts keep arriving while the engine publishes: the load is both.
                    for channel in channels:
                        await pipe.schedule([channel], PER_CHANNEL)
                    await eventually(lambda: sim.audit.summary()["posts"] == total, within_s=60)
                finally:
                    engine.request_stop()
                    await running
            elapsed_s = time.monotonic() - started
            stop.set()
            await sampling
            assert_each_published_once(sim, await pipe.deliveries(), channels, posts=total)
        finally:
            await store.close()
    assert len(samples) >= 10, "too few lag samples"
    ordered = sorted(samples)
    p50, p99 = statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]
    with capsys.disabled():
        print(
            f"\nreplica lag while publishing {total} posts in {elapsed_s:.1f} s: "
            f"{len(samples)} samples, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms"
        )
    assert ordered[-1] < ROADMAP_LAG_S


async def _sample_lag(pair: ReplicaPair, samples: list[float], stop: asyncio.Event) -> None:
    """Until ``stop``: the time from a WAL position on the primary to its replay on the
    standby, one probe after the other."""
    primary = await asyncpg.connect(pair.primary.url)
    standby = await asyncpg.connect(pair.standby.url)
    try:
        while not stop.is_set():
            started = time.monotonic()
            position = await primary.fetchval("SELECT pg_current_wal_insert_lsn()::text")
            await eventually(
                lambda p=position: standby.fetchval(REPLAYED, p),
                within_s=ROADMAP_LAG_S,
                every_s=0.001,
            )
            samples.append(time.monotonic() - started)
            await asyncio.sleep(0.02)
    finally:
        await primary.close()
        await standby.close()
