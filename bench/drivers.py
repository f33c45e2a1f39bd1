"""asyncpg versus psycopg 3 (async, pooled) on the PostgreSQL store's hot paths.

    .venv/bin/python bench/drivers.py                   # 20,000 deliveries, 3 repetitions
    .venv/bin/python bench/drivers.py --rows 50000 --reps 5 --database-url postgresql://...

Both drivers run the store's own named queries (``stores/sql/postgres.sql``) on the store's own
schema (``stores/migrations/postgres``), in a scratch schema dropped at the end, on uvloop like
the engine, each through a pool of ``--pool`` connections:

- claim: drain every due delivery in claims of 500 (``claim_due``: FOR UPDATE SKIP LOCKED,
  UPDATE ... RETURNING joined to channel and post);
- apply, set-based: guarded ``claimed -> publishing`` writes, 500 per transaction, as one
  ``apply_transitions`` statement (what the store sends);
- apply, row by row: the same 500 writes as 500 one-row statements in one transaction
  (asyncpg: one round trip each; psycopg: pipelined, ``executemany(returning=True)``);
- read: ``get_delivery`` by primary key, one client, then eight at once.

Both use the store's session settings (generic plans, no JIT). psycopg's pool here is a plain
queue of open connections (``psycopg_pool`` is not a Herald dependency): lighter than a real
pool, so if anything it favours psycopg. JSON columns are read as text by both, so neither pays
for decoding the other skips. The drivers alternate within each repetition; the median over
repetitions is printed and written to ``bench/results/drivers-<date>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import psycopg
import uvloop
from psycopg.types.string import TextLoader

from herald.domain import Transition
from herald.states import DeliveryState
from herald.stores.postgres import transition_arrays
from herald.stores.postgres_conn import PARAM, Database, Query, named_sql

# HERALD_BENCH_RESULTS: where the JSON goes (the tests smoke-run the scripts into a temp dir).
RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
BATCH = 500
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"

SEED = """
INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref, status,
                      created_at)
SELECT 'ch_' || g, 'facebook', 'page_' || g, 'Page ' || g, 'Europe/Paris', 'env:TOKEN',
       'active', now()
FROM generate_series(1, 50) AS g;
INSERT INTO posts (id, content, overrides, created_at)
SELECT 'post_' || lpad(g::text, 8, '0'),
       jsonb_build_object('text', 'Post number ' || g || ' of the driver benchmark'),
       '{}'::jsonb, now()
FROM generate_series(1, {rows}) AS g;
INSERT INTO deliveries (id, post_id, channel_id, platform, due_at, state, next_attempt_at,
                        updated_at)
SELECT 'dlv_' || lpad(g::text, 8, '0'), 'post_' || lpad(g::text, 8, '0'), 'ch_' || (g % 50 + 1),
       'facebook', now() - interval '1 hour' + g * interval '1 millisecond', 'scheduled',
       now() - interval '1 hour' + g * interval '1 millisecond', now()
FROM generate_series(1, {rows}) AS g;
"""
RESET = """
UPDATE deliveries SET state = 'scheduled', claim_token = NULL, lease_until = NULL,
    next_attempt_at = due_at, attempts = 0, check_since = NULL
WHERE state <> 'scheduled';
"""


class Driver(Protocol):
    name: str

    async def fetch(self, name: str, values: dict[str, Any]) -> list[Any]: ...

    async def fetch_in_transaction(self, name: str, rows: Sequence[dict[str, Any]]) -> int: ...

    async def close(self) -> None: ...


def session_settings(url: str, schema: str) -> dict[str, str]:
    """The store's own session settings (search_path, generic plans, no JIT), for both."""
    return Database(url, schema=schema, pool_size=1, command_timeout_s=60).server_settings()


async def keep_session(conn: Any) -> None:
    """Release without asyncpg's reset query (RESET ALL, UNLISTEN *, ...): one round trip per
    checkout that the store does not need (it leaves no session state), and that psycopg's
    pools do not pay either. An open transaction is still rolled back by asyncpg."""


class AsyncpgDriver:
    name = "asyncpg"

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._q = {name: Query.compile(name, sql) for name, sql in named_sql().items()}

    @classmethod
    async def open(cls, url: str, schema: str, size: int) -> AsyncpgDriver:
        pool = await asyncpg.create_pool(
            url,
            min_size=size,
            max_size=size,
            server_settings=session_settings(url, schema),
            reset=keep_session,
        )
        return cls(pool)

    async def fetch(self, name: str, values: dict[str, Any]) -> list[Any]:
        q = self._q[name]
        async with self._pool.acquire() as conn:
            return list(await conn.fetch(q.sql, *q.args(values)))

    async def fetch_in_transaction(self, name: str, rows: Sequence[dict[str, Any]]) -> int:
        q = self._q[name]
        found = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for values in rows:
                found += len(await conn.fetch(q.sql, *q.args(values)))
        return found

    async def close(self) -> None:
        await self._pool.close()


class PsycopgDriver:
    name = "psycopg"

    def __init__(self, conns: list[psycopg.AsyncConnection[Any]]) -> None:
        self._idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
        for conn in conns:
            self._idle.put_nowait(conn)
        self._conns = conns
        self._q = {name: PARAM.sub(r"%(\1)s", sql) for name, sql in named_sql().items()}

    @classmethod
    async def open(cls, url: str, schema: str, size: int) -> PsycopgDriver:
        conns = []
        for _ in range(size):
            options = " ".join(f"-c {k}={v}" for k, v in session_settings(url, schema).items())
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, options=options)
            conn.adapters.register_loader("jsonb", TextLoader)
            conns.append(conn)
        return cls(conns)

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        conn = await self._idle.get()
        try:
            yield conn
        finally:
            self._idle.put_nowait(conn)

    async def fetch(self, name: str, values: dict[str, Any]) -> list[Any]:
        async with self._conn() as conn:
            cursor = await conn.execute(self._q[name], values)  # type: ignore[arg-type]
            return await cursor.fetchall()

    async def fetch_in_transaction(self, name: str, rows: Sequence[dict[str, Any]]) -> int:
        found = 0
        async with self._conn() as conn, conn.transaction(), conn.cursor() as cursor:
            await cursor.executemany(self._q[name], rows, returning=True)  # type: ignore[arg-type]
            while True:
                found += len(await cursor.fetchall())
                if not cursor.nextset():
                    break
        return found

    async def close(self) -> None:
        for conn in self._conns:
            await conn.close()


# -- workloads ----------------------------------------------------------------------------------
def claim_values(limit: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "now": now,
        "limit": limit,
        "token": secrets.token_hex(12),
        "lease_until": now + timedelta(minutes=5),
        "expire_before": now - timedelta(days=1),
        "engine_id": "eng_bench",
    }


def publishing(batch: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``apply_transitions`` arguments, built as the store builds them: every (delivery,
    token) of ``batch`` to publishing."""
    now = datetime.now(UTC)
    lease = now + timedelta(minutes=5)
    return transition_arrays(
        [
            Transition(
                d,
                DeliveryState.PUBLISHING,
                claim_token=token,
                lease_until=lease,
                sent=True,
                check_first=False,
                check_since=now,
            )
            for d, token in batch
        ],
        now,
    )


async def claim_all(driver: Driver) -> list[list[tuple[str, str]]]:
    """Claim every due delivery, 500 at a time; return the (id, token) batches."""
    batches = []
    while True:
        values = claim_values(BATCH)
        found = await driver.fetch("claim_due", values)
        if not found:
            return batches
        batches.append([(row[1], values["token"]) for row in found])


async def timed(work: Callable[[], Awaitable[int]]) -> tuple[int, float]:
    start = time.perf_counter()
    count = await work()
    return count, time.perf_counter() - start


async def bench_claim(driver: Driver, state: dict[str, Any]) -> float:
    async def work() -> int:
        state["batches"] = await claim_all(driver)
        return sum(len(b) for b in state["batches"])

    rows, seconds = await timed(work)
    return rows / seconds


async def bench_apply_set(driver: Driver, state: dict[str, Any]) -> float:
    async def work() -> int:
        done = 0
        for batch in state["batches"]:
            done += len(await driver.fetch("apply_transitions", publishing(batch)))
        return done

    rows, seconds = await timed(work)
    if rows != sum(len(b) for b in state["batches"]):
        raise RuntimeError(f"{driver.name}: guarded writes did not all apply")
    return rows / seconds


async def bench_apply_rows(driver: Driver, state: dict[str, Any], batches: int) -> float:
    async def work() -> int:
        done = 0
        for batch in state["batches"][:batches]:
            one_each = [publishing([item]) for item in batch]
            done += await driver.fetch_in_transaction("apply_transitions", one_each)
        return done

    rows, seconds = await timed(work)
    return rows / seconds


async def bench_read(driver: Driver, ids: list[str], clients: int) -> float:
    async def client(mine: list[str]) -> int:
        for delivery_id in mine:
            if not await driver.fetch("get_delivery", {"id": delivery_id}):
                raise RuntimeError("missing delivery")
        return len(mine)

    async def work() -> int:
        shares = [ids[i::clients] for i in range(clients)]
        return sum(await asyncio.gather(*(client(s) for s in shares)))

    reads, seconds = await timed(work)
    return reads / seconds


# -- driver ---------------------------------------------------------------------------------
async def one_round(driver: Driver, admin: Any, args: argparse.Namespace) -> dict[str, float]:
    state: dict[str, Any] = {}
    out = {}
    await admin.execute(RESET)
    await admin.execute("VACUUM ANALYZE deliveries")
    out["claim_rows_per_s"] = await bench_claim(driver, state)
    out["apply_set_rows_per_s"] = await bench_apply_set(driver, state)
    await admin.execute(RESET)
    await admin.execute("VACUUM ANALYZE deliveries")
    state["batches"] = await claim_all(driver)
    out["apply_row_rows_per_s"] = await bench_apply_rows(driver, state, args.row_batches)
    ids = [f"dlv_{n:08d}" for n in range(1, args.rows + 1, max(1, args.rows // args.reads))]
    out["read_1_ops_per_s"] = await bench_read(driver, ids, 1)
    out["read_8_ops_per_s"] = await bench_read(driver, ids, 8)
    return out


LABELS = {
    "claim_rows_per_s": "claim 500 (SKIP LOCKED), rows/s",
    "apply_set_rows_per_s": "apply 500, one statement, rows/s",
    "apply_row_rows_per_s": "apply 500, one per row, rows/s",
    "read_1_ops_per_s": "read by id, 1 client, ops/s",
    "read_8_ops_per_s": "read by id, 8 clients, ops/s",
}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    schema = f"herald_bench_{secrets.token_hex(4)}"
    db = Database(args.database_url, schema=schema, pool_size=2, command_timeout_s=600)
    await db.open()
    await db.close()
    admin = await asyncpg.connect(args.database_url, server_settings={"search_path": schema})
    try:
        await admin.execute(SEED.replace("{rows}", str(args.rows)))
        await admin.execute("VACUUM ANALYZE")
        openers = {"asyncpg": AsyncpgDriver.open, "psycopg": PsycopgDriver.open}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in openers}
        for rep in range(args.reps):
            order = list(openers) if rep % 2 == 0 else list(reversed(openers))
            for name in order:
                driver: Driver = await openers[name](args.database_url, schema, args.pool)
                try:
                    figures = await one_round(driver, admin, args)
                finally:
                    await driver.close()
                results[name].append(figures)
                print(
                    f"  rep {rep + 1} {name:<8} "
                    + "  ".join(f"{k.split('_per_s')[0]}={v:,.0f}" for k, v in figures.items()),
                    flush=True,
                )
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
    return results


def summarise(results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, label in LABELS.items():
        a = statistics.median(r[key] for r in results["asyncpg"])
        p = statistics.median(r[key] for r in results["psycopg"])
        out[key] = {"asyncpg": round(a, 1), "psycopg": round(p, 1), "ratio": round(a / p, 2)}
        print(f"  {label:<36} asyncpg {a:>10,.0f}   psycopg {p:>10,.0f}   ratio {a / p:5.2f}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--rows", type=int, default=20_000, help="due deliveries to claim")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--pool", type=int, default=8, help="connections per driver")
    parser.add_argument("--reads", type=int, default=4000, help="reads per read workload")
    parser.add_argument(
        "--row-batches", type=int, default=4, help="batches of 500 for the row-by-row apply"
    )
    args = parser.parse_args()
    print(
        f"drivers: {args.rows} deliveries, {args.reps} repetitions, pool of {args.pool}",
        flush=True,
    )
    results = uvloop.run(run(args))
    print("median (ratio = asyncpg / psycopg):")
    summary = summarise(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"drivers-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(
        json.dumps(
            {
                "rows": args.rows,
                "reps": args.reps,
                "pool": args.pool,
                "versions": {"asyncpg": asyncpg.__version__, "psycopg": psycopg.__version__},
                "summary": summary,
                "runs": results,
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )
    print(f"  written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
