"""API throughput: posts created per second, one request per post and by CSV import (from the
upload to the import job's success).

In process (httpx's ASGI transport, no sockets), on a fresh SQLite file with the production
setting ``synchronous=FULL`` and on a fresh PostgreSQL schema: what the API, the services and
the store cost per post.

    .venv/bin/python bench/api.py [--posts 1000] [--rows 10000] [--concurrency 1 16]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import secrets
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import uvloop
from cryptography.fernet import Fernet

from herald.api import create_app
from herald.config import Settings
from herald.domain import utcnow
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store


async def bench(args: argparse.Namespace, store_kind: str) -> None:
    posts, rows, concurrency, pg_url = args.posts, args.rows, args.concurrency, args.database_url
    with tempfile.TemporaryDirectory() as folder:
        if store_kind == "postgres":
            store: Store = PostgresStore(pg_url, schema=f"herald_bench_{secrets.token_hex(4)}")
        else:
            store = SQLiteStore(Path(folder) / "bench.db", synchronous=args.synchronous)
        await store.open()
        try:
            # No per-key request budget: the benchmark is one key sending as fast as it can.
            settings = Settings(
                secret_keys=[Fernet.generate_key().decode()], api={"key_requests_per_s": 0}
            )
            app = create_app(settings, store, validators=VALIDATORS)
            token = (await Tenancy(store).create_workspace("Bench")).token
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers=headers
            ) as client:
                channel = await _channel(client)
                print(f"store: {store_kind}")
                for clients in concurrency:
                    rate = await _singles(client, channel, posts, clients)
                    print(f"POST /v1/posts, {clients:>2} at a time: {rate:8.0f} posts/s")
                rate = await _bulk(client, channel, rows)
                print(f"POST /v1/posts/import, {rows} rows:  {rate:8.0f} posts/s")
        finally:
            await store.close()
            if isinstance(store, PostgresStore):
                conn = await asyncpg.connect(pg_url)
                try:
                    await conn.execute(f"DROP SCHEMA IF EXISTS {store.schema} CASCADE")
                finally:
                    await conn.close()


async def _channel(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/v1/channels",
        json={
            "platform": "facebook",
            "external_id": "bench-page",
            "name": "Bench",
            "credentials": {"access_token": "x"},
        },
    )
    response.raise_for_status()
    return str(response.json()["id"])


async def _singles(client: httpx.AsyncClient, channel: str, posts: int, clients: int) -> float:
    due = (utcnow() + timedelta(days=1)).isoformat()
    queue = iter(range(posts))

    async def worker() -> None:
        for i in queue:
            body = {
                "channel_ids": [channel],
                "content": {"text": f"single {clients} {i}"},
                "scheduled_at": due,
            }
            response = await client.post("/v1/posts", json=body)
            response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return posts / (time.perf_counter() - started)


async def _bulk(client: httpx.AsyncClient, channel: str, rows: int) -> float:
    due = (utcnow() + timedelta(days=1)).isoformat()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["channel_ids", "text", "scheduled_at"])
    writer.writerows([channel, f"bulk {i}", due] for i in range(rows))
    data = out.getvalue().encode()
    started = time.perf_counter()
    response = await client.post(
        "/v1/posts/import", content=data, headers={"content-type": "text/csv"}
    )
    response.raise_for_status()
    job = response.json()
    while job["state"] not in ("succeeded", "failed"):  # an import runs in the background
        await asyncio.sleep(0.05)
        job = (await client.get(f"/v1/imports/{job['id']}")).raise_for_status().json()
    if job["state"] != "succeeded":
        raise RuntimeError(f"the import failed: {job['detail']}")
    return rows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("HERALD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1/test"),
    )
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    for kind in kinds:
        uvloop.run(bench(args, kind))


if __name__ == "__main__":
    main()
