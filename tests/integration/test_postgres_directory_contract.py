"""The Directory contract (tests/suites/directory_contract.py) on PostgreSQL, in a schema of
its own."""

from __future__ import annotations

import asyncpg
import pytest

from herald.stores.directory_postgres import PostgresDirectory
from tests.conftest import PG_URL
from tests.suites.directory_contract import DirectoryContract, home

pytestmark = pytest.mark.postgres


class TestPostgresDirectoryContract(DirectoryContract):
    @pytest.fixture
    async def directory(self, pg_schema):
        found = PostgresDirectory(f"{PG_URL}?schema={pg_schema}")
        await found.open()
        try:
            yield found
        finally:
            await found.close()


async def test_it_keeps_ids_prefixes_hashes_and_regions_only(pg_schema):
    """No content: the directory's columns are what it needs to route a request."""
    directory = PostgresDirectory(f"{PG_URL}?schema={pg_schema}")
    await directory.open()
    await directory.close()
    conn = await asyncpg.connect(PG_URL)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
            pg_schema,
        )
    finally:
        await conn.close()
    columns = {(r["table_name"], r["column_name"]) for r in rows}
    assert columns == {
        ("directory_workspaces", "workspace_id"),
        ("directory_workspaces", "region"),
        ("directory_workspaces", "moving_to"),
        ("directory_workspaces", "created_at"),
        ("directory_keys", "prefix"),
        ("directory_keys", "key_id"),
        ("directory_keys", "workspace_id"),
        ("directory_keys", "digest"),
        ("directory_keys", "revoked"),
    }


async def test_opening_twice_keeps_what_is_there(pg_schema):
    url = f"{PG_URL}?schema={pg_schema}"
    first = PostgresDirectory(url)
    await first.open()
    try:
        await first.add_workspace(home())
    finally:
        await first.close()
    second = PostgresDirectory(url)
    await second.open()
    try:
        assert (await second.workspace("ws_a")).region == "eu-west-1"
    finally:
        await second.close()
