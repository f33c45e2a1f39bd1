"""The engine face of the store contract on PostgreSQL (tests/suites/store_contract.py)."""

from __future__ import annotations

import asyncpg
import pytest

from herald.stores.postgres import PostgresStore
from tests.conftest import PG_URL
from tests.suites.store_contract import StoreContract

pytestmark = pytest.mark.postgres


class TestStoreContractOnPostgres(StoreContract):
    pass


async def test_the_url_s_application_name_names_the_sessions(pg_schema):
    store = PostgresStore(f"{PG_URL}?schema={pg_schema}&application_name=herald-engine-7")
    await store.open()
    try:
        conn = await asyncpg.connect(PG_URL)
        try:
            names = await conn.fetch(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
            )
        finally:
            await conn.close()
    finally:
        await store.close()
    assert "herald-engine-7" in {r["application_name"] for r in names}
