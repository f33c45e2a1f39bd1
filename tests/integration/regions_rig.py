"""Two regions on two PostgreSQL servers, for the residency and move tests: us-east-1 on the
test server, eu-west-1 on the second one (scripts/services.sh), the directory beside the first,
each in schemas of the test's own. The ``two`` and ``opened`` fixtures are in
tests/integration/conftest.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet
from fastapi import FastAPI
from typer.testing import CliRunner

from herald.api import create_app
from herald.cli import app as cli_app
from herald.config import Settings
from herald.domain import Platform
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.simulator import Simulator
from herald.stores import postgres_move
from herald.stores.directory_postgres import PostgresDirectory
from herald.stores.postgres import PostgresStore
from herald.stores.postgres_conn import Query
from herald.types import Regional
from tests.conftest import PG2_URL, PG_URL, drop_schema

US, EU = "us-east-1", "eu-west-1"
SECRET = Fernet.generate_key().decode()


@dataclass(frozen=True)
class TwoRegions:
    schema: str

    @property
    def us_url(self) -> str:
        return f"{PG_URL}?schema={self.schema}"

    @property
    def eu_url(self) -> str:
        return f"{PG2_URL}?schema={self.schema}"

    @property
    def directory_url(self) -> str:
        return f"{PG_URL}?schema={self.schema}_dir"

    def regions(self, *, api_urls: bool = False) -> dict[str, dict[str, str]]:
        found = {US: {"database_url": self.us_url}, EU: {"database_url": self.eu_url}}
        if api_urls:
            found[US]["api_url"] = "https://us.api.example.test"
            found[EU]["api_url"] = "https://eu.api.example.test/"
        return found

    def settings(self, region: str = US, **more: Any) -> Settings:
        return Settings(
            regions=self.regions(api_urls=True),
            region=region,
            directory_url=self.directory_url,
            secret_keys=[SECRET],
            **more,
        )

    def env(self, base: dict[str, str], region: str = US) -> dict[str, str]:
        env = {k: v for k, v in base.items() if k != "HERALD_DATABASE_URL"}
        return env | {
            "HERALD_REGIONS": json.dumps(self.regions()),
            "HERALD_REGION": region,
            "HERALD_DIRECTORY_URL": self.directory_url,
            "HERALD_SECRET_KEYS": SECRET,
        }


@asynccontextmanager
async def two_regions(schema: str) -> AsyncIterator[TwoRegions]:
    """Both regions' databases and the directory, in schemas named after ``schema``, dropped
    after (the first server's ``schema`` by its own fixture)."""
    try:
        yield TwoRegions(schema)
    finally:
        await drop_schema(schema, PG2_URL)
        await drop_schema(f"{schema}_dir")


@dataclass
class Opened:
    us: PostgresStore
    eu: PostgresStore
    directory: PostgresDirectory

    def node(self, settings: Settings, *, serve: bool = True) -> FastAPI:
        """An API node of ``settings``'s region (us-east-1's store), serving the other
        region's keys from its database (``serve``) or, without it, redirecting them."""
        home, other = (self.eu, self.us) if settings.region == EU else (self.us, self.eu)
        others = {(US if settings.region == EU else EU): other} if serve else {}
        return create_app(
            settings, home, validators=VALIDATORS, regional=Regional(self.directory, others)
        )

    def tenancy(self, region: str) -> Tenancy:
        store = self.eu if region == EU else self.us
        return Tenancy(store, directory=self.directory, region=region)


@asynccontextmanager
async def opened_regions(two: TwoRegions) -> AsyncIterator[Opened]:
    us, eu = PostgresStore(two.us_url), PostgresStore(two.eu_url)
    directory = PostgresDirectory(two.directory_url)
    for part in (us, eu, directory):
        await part.open()
    try:
        yield Opened(us, eu, directory)
    finally:
        for part in (us, eu, directory):
            await part.close()


async def rows_naming(url: str, schema: str, ids: set[str]) -> dict[str, int]:
    """Every table of ``schema`` on the server at ``url`` with a row naming any of ``ids`` in
    any column (the row read as text), and how many."""
    pattern = "|".join(re.escape(i) for i in sorted(ids))
    conn = await asyncpg.connect(url.split("?", maxsplit=1)[0])
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
            "AND table_type = 'BASE TABLE'",
            schema,
        )
        found: dict[str, int] = {}
        for row in tables:
            name = row["table_name"]
            count = await conn.fetchval(
                f'SELECT count(*) FROM "{schema}"."{name}" t WHERE t::text ~ $1', pattern
            )
            if count:
                found[name] = count
        return found
    finally:
        await conn.close()


def cli(env: dict[str, str], *args: str) -> list[str]:
    result = CliRunner().invoke(cli_app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()


def api_client(app: Any, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://us-node.test",
        headers={"Authorization": f"Bearer {token}"},
    )


def channel_body(simulator: Simulator | None, platform: Platform = Platform.FACEBOOK, **more: Any):
    account = None if simulator is None else simulator.add_account(platform)
    return {
        "platform": platform.value,
        "external_id": "page-1" if account is None else account.external_id,
        "name": "a page",
        "timezone": "Europe/Paris",
        "credentials": {"access_token": "t0k"} if account is None else account.credentials,
        **more,
    }


async def execute_on(url: str, statement: str, *args: Any) -> None:
    """One statement on the server of ``url`` (a test's own change to a region's rows)."""
    conn = await asyncpg.connect(url.split("?", maxsplit=1)[0])
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


def die_after_copy(monkeypatch: Any) -> None:
    """The mover dies after its copy committed, before its deletion where the workspace was
    (its first statement, on read positions, fails)."""
    real = postgres_move._copy_then_delete

    async def dying(src: Any, dst: Any, workspace_id: str, region: str) -> Any:
        broken = dict(src.q)
        broken["erase_read_positions"] = Query.compile("boom", "SELECT 1 / 0 WHERE :id = ''")
        src.q, kept = broken, src.q
        try:
            return await real(src, dst, workspace_id, region)
        finally:
            src.q = kept

    monkeypatch.setattr(postgres_move, "_copy_then_delete", dying)
