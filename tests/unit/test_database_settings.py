"""The primary and its read replica: HERALD_DATABASE_URL as before, database.replica_url for
PostgreSQL only, and when a replica may serve a read (herald.stores.postgres_replica)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from herald.bootstrap import open_store
from herald.config import Settings
from herald.stores.memory import MemoryStore
from herald.stores.postgres import PostgresStore
from herald.stores.postgres_replica import ReplicaStatus

PRIMARY = "postgresql://herald@db-1:5432/herald"
REPLICA = "postgresql://herald@db-2:5432/herald"


def test_the_environment_names_the_primary_and_the_replica(monkeypatch):
    monkeypatch.setenv("HERALD_DATABASE_URL", PRIMARY)
    monkeypatch.setenv("HERALD_DATABASE__REPLICA_URL", REPLICA)
    monkeypatch.setenv("HERALD_DATABASE__REPLICA_MAX_LAG_S", "12")
    settings = Settings()
    assert settings.database_url == PRIMARY
    assert settings.database.replica_url == REPLICA
    assert settings.database.replica_max_lag_s == 12.0


def test_no_replica_by_default():
    assert Settings(database_url=PRIMARY).database.replica_url is None


def test_sqlite_refuses_a_replica():
    with pytest.raises(ValidationError, match="SQLite has no replicas"):
        Settings(database_url="sqlite:///herald.db", database={"replica_url": REPLICA})


def test_a_replica_is_a_postgresql_url():
    with pytest.raises(ValidationError, match="must start with postgresql://"):
        Settings(database_url=PRIMARY, database={"replica_url": "sqlite:///copy.db"})


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://herald@db-2:5432,db-3:5432/herald",
        "postgresql://herald@/herald?host=db-2,db-3",
    ],
)
def test_a_replica_is_one_server(url):
    # Behind several hosts libpq takes whichever answers: the primary, or another standby.
    with pytest.raises(ValidationError, match="must name one server"):
        Settings(database_url=PRIMARY, database={"replica_url": url})


def test_a_replica_on_a_unix_socket_is_one_server():
    url = "postgresql://herald@/herald?host=/var/run/postgresql"
    assert Settings(database_url=PRIMARY, database={"replica_url": url}).database.replica_url == url


def test_the_in_memory_store_ignores_the_replica():
    settings = Settings(database_url="memory://", database={"replica_url": REPLICA})
    assert isinstance(open_store(settings, api=True), MemoryStore)


def test_only_the_api_reads_from_the_replica():
    settings = Settings(database_url=PRIMARY, database={"replica_url": REPLICA})
    api = open_store(settings, api=True)
    engine = open_store(settings, for_engine=True)
    assert isinstance(api, PostgresStore)
    assert isinstance(engine, PostgresStore)
    assert api.replica is not None
    assert engine.replica is None  # an engine decides from the primary alone


@pytest.mark.parametrize(
    ("status", "needed", "serves"),
    [
        (ReplicaStatus(0.0, reachable=True, replayed=500, lag_s=0.2), None, True),
        (ReplicaStatus(0.0, reachable=True, replayed=500, lag_s=0.2), 500, True),
        # the key wrote further than the replica has replayed: the primary answers
        (ReplicaStatus(0.0, reachable=True, replayed=500, lag_s=0.2), 501, False),
        # too far behind, or away: nobody reads from it
        (ReplicaStatus(0.0, reachable=True, replayed=500, lag_s=31.0), None, False),
        (ReplicaStatus(0.0), None, False),
        # promoted: as fresh as a primary
        (ReplicaStatus(0.0, reachable=True, replayed=math.inf, lag_s=0.0), 10**12, True),
    ],
)
def test_when_a_replica_serves(status, needed, serves):
    assert status.serves(needed, max_lag_s=30.0) is serves
