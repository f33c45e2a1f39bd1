"""CSV imports and the other tenants: one workspace's big import, another's reads meanwhile.

    .venv/bin/python bench/imports.py                       # 4,000 rows x 20 channels, both stores
    .venv/bin/python bench/imports.py --big                 # 10,000 rows x 50 channels (500,000
                                                            # deliveries, an 18 MB file)
    .venv/bin/python bench/imports.py --store postgres --rows 5000 --channels 20

Each run: a fresh store (a SQLite file with the production ``synchronous=FULL``, or a
PostgreSQL schema of its own) holding a third workspace's ``--history`` deliveries, analysed
(see ``_history``), two workspaces, and a real ``herald api`` process on it (uvloop, as the
command runs); channels and a few posts made through its API. Then, over HTTP:

1. **idle**: workspace B reads ``GET /v1/posts?limit=20`` every ``--probe-ms`` for
   ``--idle-s`` seconds, one request at a time: its latency p50 / p99;
2. **during**: workspace A posts the CSV (``POST /v1/posts/import``, 202) and follows its job
   (``GET /v1/imports/{id}`` every half second) until it succeeds, while B goes on reading at
   the same pace: B's p50 / p99 meanwhile, and their ratio to the idle ones;
3. the import's rows/s and deliveries/s (from the POST to the job's success), and the server
   process's resident memory before the import and at its peak (``VmHWM``, /proc).

The client shares the machine (and its cores) with the server and the database. One line per
store, and bench/results/imports[-<store>]-<date>.json. Exit status 1 if an import did not
succeed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

from herald.domain import Channel, Content, NewPost, Platform, Post, new_id, utcnow
from herald.service.tenancy import Tenancy
from herald.stores.postgres import PostgresStore
from herald.stores.sqlite import SQLiteStore
from herald.types import Store
from run import _close_store  # bench/run.py: closes a store, drops a PostgreSQL one's schema

RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", Path(__file__).parent / "results"))
DEFAULT_PG_URL = os.environ.get(
    "HERALD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PROBE_URL = "/v1/posts?limit=20"


@dataclass
class Tenant:
    http: httpx.AsyncClient
    token: str

    async def call(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return await self.http.request(method, url, headers=headers, **kw)

    async def made(self, method: str, url: str, **kw: Any) -> Any:
        response = await self.call(method, url, **kw)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
        return response.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_kb(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (the peak so far) of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _store(kind: str, work: Path, pg_url: str) -> tuple[Store, dict[str, str]]:
    """The store the bench prepares, and how the server finds it."""
    if kind == "postgres":
        schema = f"herald_bench_{secrets.token_hex(4)}"
        return PostgresStore(pg_url, schema=schema), {
            "HERALD_DATABASE_URL": f"{pg_url}?schema={schema}"
        }
    path = work / "herald.db"
    return SQLiteStore(path), {"HERALD_DB": str(path)}


def _environment(database: dict[str, str], port: int, args: argparse.Namespace) -> dict[str, str]:
    size_mb = args.rows * (args.channels * 36 + 200) // 1_000_000 + 8
    return {
        **os.environ,
        **database,
        "HERALD_SECRET_KEYS": Fernet.generate_key().decode(),
        "HERALD_API__PORT": str(port),
        "HERALD_API__KEY_REQUESTS_PER_S": "0",  # the bench's own requests are not throttled
        "HERALD_API__IMPORT_MAX_ROWS": str(max(args.rows, 10_000)),
        "HERALD_API__IMPORT_MAX_DELIVERIES": str(max(args.rows * args.channels, 100_000)),
        "HERALD_API__IMPORT_MAX_BYTES": str(max(size_mb, 16) * 1024 * 1024),
        "HERALD_LOG_LEVEL": "WARNING",
    }


async def _history(store: Store, tenancy: Tenancy, deliveries: int, pg_url: str) -> None:
    """A third workspace's ``deliveries`` posts, stored as a deployment that has run for a
    while holds them, then the statistics a running PostgreSQL's autovacuum would have
    taken. On empty tables, never analysed, PostgreSQL's generic plans read the deliveries
    sequentially once an import has filled them (``deliveries_of``: 0.3 ms, then 40 ms after
    80,000 deliveries, until the next automatic ANALYZE): a first-minute effect of a new
    database, the same for every writer, and not what this benchmark measures."""
    if deliveries <= 0:
        return
    workspace = (await tenancy.create_workspace("History")).key.workspace_id
    channel = Channel(new_id("ch"), Platform.FACEBOOK, "history", "History", "UTC", "env:X")
    await store.add_channels([replace(channel, workspace_id=workspace)])
    due = utcnow() + timedelta(days=3)
    for start in range(0, deliveries, 1000):
        posts = [
            NewPost.at(
                Post(new_id("post"), Content(text=f"history {i}"), workspace_id=workspace),
                [(new_id("dlv"), channel.id)],
                due,
            )
            for i in range(start, min(deliveries, start + 1000))
        ]
        await store.add_posts(posts)
    if isinstance(store, PostgresStore):
        conn = await asyncpg.connect(pg_url, server_settings={"search_path": store.schema or ""})
        try:
            await conn.execute("ANALYZE deliveries; ANALYZE posts")  # this run's schema only
        finally:
            await conn.close()


def _csv(channel_ids: list[str], rows: int) -> bytes:
    due = (utcnow() + timedelta(days=1)).isoformat()
    targets = " ".join(channel_ids)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["channel_ids", "text", "scheduled_at"])
    for i in range(rows):
        writer.writerow([targets, f"Bench import row {i}: fresh bread every morning at 7.", due])
    return out.getvalue().encode()


async def _channels(tenant: Tenant, count: int, prefix: str) -> list[str]:
    ids = []
    for i in range(count):
        body = {
            "platform": "facebook",
            "external_id": f"{prefix}-{i}",
            "name": f"{prefix} {i}",
            "credentials": {"access_token": "x"},
        }
        ids.append(str((await tenant.made("POST", "/v1/channels", json=body))["id"]))
    return ids


async def _probe(tenant: Tenant, every_s: float, until: asyncio.Event) -> list[float]:
    """B's reads, one at a time, started every ``every_s``: their latencies in seconds."""
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while not until.is_set():
        started = time.perf_counter()
        response = await tenant.call("GET", PROBE_URL)
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"GET {PROBE_URL}: {response.status_code} {response.text[:200]}")
        next_at = max(next_at + every_s, loop.time())
        await asyncio.sleep(next_at - loop.time())
    return latencies


def _percentiles(latencies: list[float]) -> dict[str, float]:
    if len(latencies) < 2:  # an import over before a second read: its one figure is both
        latencies = latencies * 2
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2)}


async def _import(a: Tenant, data: bytes, poll_s: float) -> dict[str, Any]:
    """Post the file and follow its job until it is done; the job as last seen."""
    job = await a.made(
        "POST", "/v1/posts/import", content=data, headers={"content-type": "text/csv"}
    )
    while job["state"] not in ("succeeded", "failed"):
        await asyncio.sleep(poll_s)
        job = await a.made("GET", f"/v1/imports/{job['id']}")
    return dict(job)


async def _ready(http: httpx.AsyncClient, server: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.returncode is not None:
            raise RuntimeError(f"the API process exited with {server.returncode}")
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("the API process was not ready within 60 s")


async def _measure(
    args: argparse.Namespace, server_pid: int, a: Tenant, b: Tenant, channel_ids: list[str]
) -> dict[str, Any]:
    every_s = args.probe_ms / 1000
    stop = asyncio.Event()
    idle = asyncio.create_task(_probe(b, every_s, stop))
    await asyncio.sleep(args.idle_s)
    stop.set()
    idle_latencies = await idle
    data = _csv(channel_ids, args.rows)
    rss_before = _memory_kb(server_pid, "VmRSS")
    stop = asyncio.Event()
    during = asyncio.create_task(_probe(b, every_s, stop))
    started = time.perf_counter()
    job = await _import(a, data, poll_s=0.5)
    took = time.perf_counter() - started
    stop.set()
    during_latencies = await during
    idle_figures, during_figures = _percentiles(idle_latencies), _percentiles(during_latencies)
    deliveries = args.rows * len(channel_ids)
    return {
        "rows": args.rows,
        "channels": len(channel_ids),
        "deliveries": deliveries,
        "file_mb": round(len(data) / 1e6, 1),
        "state": job["state"],
        "detail": job.get("detail"),
        "import_s": round(took, 2),
        "rows_per_s": round(args.rows / took),
        "deliveries_per_s": round(deliveries / took),
        "rss_before_mb": round(rss_before / 1024),
        "rss_peak_mb": round(_memory_kb(server_pid, "VmHWM") / 1024),
        "idle": idle_figures | {"requests": len(idle_latencies)},
        "during": during_figures | {"requests": len(during_latencies)},
        "p50_ratio": round(during_figures["p50_ms"] / idle_figures["p50_ms"], 2),
        "p99_ratio": round(during_figures["p99_ms"] / idle_figures["p99_ms"], 2),
    }


async def run_once(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="herald-imports-") as tmp:
        store, database = _store(kind, Path(tmp), args.database_url)
        await store.open()
        try:
            tenancy = Tenancy(store)
            token_a = (await tenancy.create_workspace("Importer")).token
            token_b = (await tenancy.create_workspace("Neighbour")).token
            await _history(store, tenancy, args.history, args.database_url)
            port = _free_port()
            server = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "herald.cli",
                "api",
                env=_environment(database, port, args),
            )
            try:
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=120
                ) as http:
                    await _ready(http, server)
                    a, b = Tenant(http, token_a), Tenant(http, token_b)
                    channel_ids = await _channels(a, args.channels, "importer")
                    [b_channel] = await _channels(b, 1, "neighbour")
                    for i in range(20):
                        body = {
                            "channel_ids": [b_channel],
                            "content": {"text": f"Neighbour post {i}"},
                            "scheduled_at": (utcnow() + timedelta(days=2)).isoformat(),
                        }
                        await b.made("POST", "/v1/posts", json=body)
                    figures = await _measure(args, server.pid, a, b, channel_ids)
            finally:
                server.send_signal(signal.SIGTERM)
                await asyncio.wait_for(server.wait(), 60)
        finally:
            await _close_store(store, args.database_url)
    return {"store": kind, **figures}


def _print(run: dict[str, Any]) -> None:
    idle, during = run["idle"], run["during"]
    print(
        f"{run['store']:>8}: {run['rows']} rows x {run['channels']} channels "
        f"({run['deliveries']:,} deliveries, {run['file_mb']} MB): {run['state']} in "
        f"{run['import_s']} s, {run['rows_per_s']:,} rows/s, {run['deliveries_per_s']:,} "
        f"deliveries/s; server RSS {run['rss_before_mb']} MB before, peak {run['rss_peak_mb']} MB",
        flush=True,
    )
    print(
        f"{'':>8}  other tenant's GET {PROBE_URL}: idle p50 {idle['p50_ms']} ms p99 "
        f"{idle['p99_ms']} ms ({idle['requests']} requests); during p50 {during['p50_ms']} ms "
        f"p99 {during['p99_ms']} ms ({during['requests']}); ratio p50 {run['p50_ratio']}, "
        f"p99 {run['p99_ratio']}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4_000)
    parser.add_argument("--channels", type=int, default=20, help="every row targets them all")
    parser.add_argument("--big", action="store_true", help="10,000 rows x 50 channels")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--idle-s", type=float, default=5.0, help="idle latency measured this long")
    parser.add_argument("--probe-ms", type=float, default=20.0, help="B reads this often")
    parser.add_argument(
        "--history", type=int, default=20_000, help="deliveries stored before (another workspace)"
    )
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL server")
    args = parser.parse_args()
    if args.big:
        args.rows, args.channels = 10_000, 50
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    runs = []
    for kind in kinds:
        run = asyncio.run(run_once(kind, args))
        _print(run)
        runs.append(run)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.store == "both" else f"-{args.store}"
    out = RESULTS / f"imports{suffix}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(runs, indent=2))
    print(f"results: {out}")
    return 0 if all(r["state"] == "succeeded" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
