"""API load: Locust users making an agency's traffic against a real ``herald serve`` process.

    .venv/bin/python bench/load/drive.py                          # SQLite then PostgreSQL
    .venv/bin/python bench/load/drive.py --store sqlite --users 20 --duration-s 30
    make bench-load                                             # installs the load group first

Each store in turn (a SQLite file with the production settings, or a fresh PostgreSQL schema
dropped afterwards): the platform simulator in its own process, then ``herald serve`` (API,
engine and webhook sender in one process, uvloop, as deployed) on the store. Through its API:
``--workspaces`` workspaces (one API key each), ``--channels`` channels each (Facebook,
LinkedIn and Instagram accounts of the simulator, ten time zones, weekly posting slots
every hour from 08:00 to 20:00), and ``--posts`` posts imported as CSV files (1 to 3 channels
each, due at quarter hours over the next 8 weeks), so that listings and calendars have data.
On PostgreSQL the tables are then analysed, as autovacuum would have.

Then ``locust --headless`` runs bench/load/locustfile.py (the mix and its weights are in its
docstring) with ``--users`` users started at ``--spawn-rate`` per second for ``--duration-s``
seconds; the figures count from the moment every user has started (``--reset-stats``).
Printed per request name: requests, requests/s, failures, expected 4xx (409, 429), p50 / p95
/ p99 / max in ms; the server's CPU seconds per 1,000 requests, Locust's own CPU (it shares
the machine). Written to bench/results/api-load-<store>-<date>.json.

Exit status 1 if any request failed: a 5xx, another 4xx than the expected ones, no answer.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib.util
import io
import json
import os
import random
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from cryptography.fernet import Fernet

from herald.config import Settings
from herald.demo.simulator_process import SimulatorProcess
from herald.domain import MediaKind, Platform
from herald.service.tenancy import Tenancy
from herald.simulator import LatencyModel, SimulatorConfig
from herald.stores.postgres import PostgresStore
from herald.types import Store

sys.path.insert(0, str(Path(__file__).parents[1]))  # the bench scripts beside this folder
from imports import _ready, _store  # bench/imports.py: /readyz; a store and its URL for it
from run import _close_store  # bench/run.py: closes a store, drops its schema

HERE = Path(__file__).parent
RESULTS = Path(os.environ.get("HERALD_BENCH_RESULTS", HERE.parent / "results"))
DEFAULT_PG_URL = os.environ.get(
    "HERALD_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PLATFORMS = (Platform.FACEBOOK, Platform.LINKEDIN, Platform.INSTAGRAM)
ZONES = (  # IANA zones of the channels, one after the other
    *("Europe/Paris", "America/New_York", "Asia/Tokyo", "Europe/London", "America/Los_Angeles"),
    *("Australia/Sydney", "America/Sao_Paulo", "Asia/Kolkata", "Africa/Lagos", "UTC"),
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
SLOTS = [{"day": d, "time": f"{h:02d}:00"} for d in WEEKDAYS for h in range(8, 21)]
SEED_HORIZON_DAYS = 56
SEED_FILE_ROWS = 5_000  # under the API's import_max_rows (10,000)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of a process so far (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# --- the store and the server ---------------------------------------------------------------


async def _workspaces(store: Store, count: int) -> list[str]:
    """``count`` workspaces, made as ``herald admin create-workspace`` does: their keys."""
    await store.open()
    try:
        tenancy = Tenancy(store)
        return [(await tenancy.create_workspace(f"Client {i}")).token for i in range(count)]
    finally:
        await store.close()


def _environment(
    database: dict[str, str], sim: dict[str, dict[str, str]], port: int, args: argparse.Namespace
) -> dict[str, str]:
    env = {
        **os.environ,
        **database,
        "HERALD_SECRET_KEYS": Fernet.generate_key().decode(),
        "HERALD_API__PORT": str(port),
        "HERALD_API__KEY_REQUESTS_PER_S": str(args.key_rate),
        "HERALD_API__KEY_BURST": str(max(100, args.key_rate * 5)),
        "HERALD_LOG_LEVEL": "WARNING",
    }
    for section, values in sim.items():
        for key, value in values.items():
            env[f"HERALD_{section.upper()}__{key.upper()}"] = value
    return env


# --- seeding, over the API ------------------------------------------------------------------


async def _made(http: httpx.AsyncClient, token: str, method: str, url: str, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    response = await http.request(method, url, headers=headers, **kw)
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return response.json()


async def _channels(
    http: httpx.AsyncClient, sim: SimulatorProcess, token: str, first: int, count: int
) -> list[dict[str, str]]:
    made = []
    for i in range(first, first + count):
        account = await sim.client.add_account(PLATFORMS[i % len(PLATFORMS)])
        body = {
            "platform": account.platform.value,
            "external_id": account.external_id,
            "name": f"{account.platform.value} {i}",
            "timezone": ZONES[i % len(ZONES)],
            "credentials": account.credentials,
        }
        channel = await _made(http, token, "POST", "/v1/channels", json=body)
        await _made(
            http, token, "PUT", f"/v1/channels/{channel['id']}/schedule", json={"slots": SLOTS}
        )
        made.append(
            {"id": channel["id"], "platform": channel["platform"], "timezone": body["timezone"]}
        )
    return made


def _seed_csv(channels: list[dict[str, str]], rows: int, image: str, rng: random.Random) -> bytes:
    """``rows`` posts on 1 to 3 of the channels, at quarter hours over the next 8 weeks."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["channel_ids", "text", "media_urls", "scheduled_at"])
    for i in range(rows):
        targets = rng.sample(channels, min(len(channels), rng.randint(1, 3)))
        media = image if any(c["platform"] == "instagram" for c in targets) else ""
        due = start + timedelta(minutes=15 * rng.randrange(SEED_HORIZON_DAYS * 24 * 4))
        text = f"Seeded post {i} {secrets.token_hex(4)}: our week at the bakery"
        writer.writerow([";".join(c["id"] for c in targets), text, media, due.isoformat()])
    return out.getvalue().encode()


async def _seed_posts(
    http: httpx.AsyncClient, token: str, channels: list[dict[str, str]], rows: int, image: str
) -> None:
    rng = random.Random(token)
    while rows > 0:
        size = min(rows, SEED_FILE_ROWS)
        rows -= size
        data = _seed_csv(channels, size, image, rng)
        headers = {"Content-Type": "text/csv"}
        job = await _made(http, token, "POST", "/v1/posts/import", content=data, headers=headers)
        while job["state"] not in ("succeeded", "failed"):
            await asyncio.sleep(0.2)
            job = await _made(http, token, "GET", f"/v1/imports/{job['id']}")
        if job["state"] != "succeeded":
            raise RuntimeError(f"seeding failed: {job['detail']} {job['errors'][:3]}")


async def _seed(
    http: httpx.AsyncClient, sim: SimulatorProcess, tokens: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    image = await sim.client.media_url(MediaKind.IMAGE, "load.jpg", size=8192)
    workspaces = []
    for n, token in enumerate(tokens):
        channels = await _channels(http, sim, token, n * args.channels, args.channels)
        workspaces.append({"token": token, "channels": channels})
    share, extra = divmod(args.posts, len(tokens))
    await asyncio.gather(
        *(
            _seed_posts(http, w["token"], w["channels"], share + (i < extra), image)
            for i, w in enumerate(workspaces)
        )
    )
    return {"image_url": image, "workspaces": workspaces}


async def _analyse(store: Store, pg_url: str) -> None:
    """What a running PostgreSQL's autovacuum would have done after the seeding (see
    bench/imports.py, ``_history``: plans made on never-analysed tables scan)."""
    if isinstance(store, PostgresStore):
        conn = await asyncpg.connect(pg_url, server_settings={"search_path": store.schema or ""})
        try:
            await conn.execute("ANALYZE deliveries; ANALYZE posts; ANALYZE channels")
        finally:
            await conn.close()


# --- Locust ---------------------------------------------------------------------------------


def _locust(args: argparse.Namespace, host: str, tenants: Path, work: Path) -> dict[str, Any]:
    """Run Locust headless; its per-name figures, statuses and own CPU."""
    prefix = work / "locust"
    tally = work / "tally.json"
    env = {
        **os.environ,
        "HERALD_LOAD_TENANTS": str(tenants),
        "HERALD_LOAD_TALLY": str(tally),
        "HERALD_LOAD_WAIT_S": f"{args.wait_s[0]},{args.wait_s[1]}",
    }
    command = [
        *(sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless"),
        *("--host", host, "-u", str(args.users), "-r", str(args.spawn_rate)),
        *("-t", f"{args.duration_s}s", "--reset-stats", "--only-summary"),
        *("--csv", str(prefix), "--stop-timeout", "10", "--loglevel", "WARNING"),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=args.duration_s + args.users / args.spawn_rate + 120,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if not Path(f"{prefix}_stats.csv").exists():
        raise RuntimeError(f"locust wrote no figures:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
    warnings = [line for line in done.stderr.splitlines() if "CPU usage" in line]
    statuses = json.loads(tally.read_text()) if tally.exists() else {}
    return {
        "rows": _stats_rows(Path(f"{prefix}_stats.csv")),
        "failures": _failure_rows(Path(f"{prefix}_failures.csv")),
        "statuses": statuses,
        "locust_cpu_s": round(cpu, 1),
        "locust_cpu_warnings": warnings,
    }


def _stats_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            rows.append(
                {
                    "name": row["Name"] if row["Type"] else "all",
                    "method": row["Type"],
                    "requests": int(row["Request Count"]),
                    "failures": int(row["Failure Count"]),
                    "rps": round(float(row["Requests/s"]), 1),
                    "p50_ms": _ms(row["50%"]),
                    "p95_ms": _ms(row["95%"]),
                    "p99_ms": _ms(row["99%"]),
                    "max_ms": round(float(row["Max Response Time"]), 1),
                }
            )
    return rows


def _ms(cell: str) -> float | None:
    return None if cell in ("", "N/A") else float(cell)


def _failure_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [
            {
                "method": r["Method"],
                "name": r["Name"],
                "error": r["Error"],
                "occurrences": int(r["Occurrences"]),
            }
            for r in csv.DictReader(f)
        ]


# --- one store ------------------------------------------------------------------------------


@dataclass
class Stage:
    """One store's run: what it is, where its files go, how the server finds it."""

    kind: str
    args: argparse.Namespace
    work: Path
    store: Store
    database: dict[str, str]


async def run_once(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    latency = LatencyModel(median_s=0.08, p99_s=1.0)
    sim_config = SimulatorConfig.from_settings(Settings(), latency=latency, seed=7)
    with tempfile.TemporaryDirectory(prefix="herald-load-") as tmp:
        store, database = _store(kind, Path(tmp), args.database_url)
        stage = Stage(kind, args, Path(tmp), store, database)
        try:
            tokens = await _workspaces(store, args.workspaces)
            async with SimulatorProcess(sim_config) as sim:
                return await _serve_and_load(stage, sim, tokens)
        finally:
            await _close_store(store, args.database_url)  # closed already: drops the schema


async def _serve_and_load(stage: Stage, sim: SimulatorProcess, tokens: list[str]) -> dict[str, Any]:
    args, port = stage.args, _free_port()
    env = _environment(stage.database, await sim.client.settings_overrides(), port, args)
    log = (stage.work / "server.log").open("w+")
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "herald.cli", "serve"), env=env, stderr=log
    )
    host = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=host, timeout=120) as http:
            await _ready(http, server)
            started = time.perf_counter()
            tenants = await _seed(http, sim, tokens, args)
            seed_s = time.perf_counter() - started
            _say(f"{stage.kind}: {args.posts:,} posts seeded in {seed_s:.1f} s; Locust starts")
        await _analyse(stage.store, args.database_url)
        tenants_file = stage.work / "tenants.json"
        tenants_file.write_text(json.dumps(tenants))
        cpu_before = _cpu_s(server.pid)
        figures = await asyncio.to_thread(_locust, args, host, tenants_file, stage.work)
        server_cpu = _cpu_s(server.pid) - cpu_before
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 60)
        log.seek(0)
        server_log = log.read()
        log.close()
    total = next(r for r in figures["rows"] if r["name"] == "all")
    codes: Counter[int] = Counter()
    for by_code in figures["statuses"].values():
        codes.update({int(code): n for code, n in by_code.items()})
    return {
        "store": stage.kind,
        "users": args.users,
        "duration_s": args.duration_s,
        "workspaces": args.workspaces,
        "channels_per_workspace": args.channels,
        "seeded_posts": args.posts,
        "seed_s": round(seed_s, 1),
        "wait_s": args.wait_s,
        "key_requests_per_s": args.key_rate,
        **figures,
        "http_5xx": sum(n for code, n in codes.items() if code >= 500),
        "no_answer": codes[0],
        "expected_4xx": codes[409] + codes[429],
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_s_per_1k": round(server_cpu / max(total["requests"], 1) * 1000, 2),
        "server_exit": server.returncode,
        "server_errors": [line for line in server_log.splitlines() if " ERROR " in line][:20],
    }


# --- output ---------------------------------------------------------------------------------


def _expected(statuses: dict[str, dict[str, int]], name: str) -> int:
    codes = statuses.get(name, {})
    return sum(n for code, n in codes.items() if code in ("409", "429"))


def _print(run: dict[str, Any]) -> None:
    print(
        f"\n{run['store']}: {run['users']} users over {run['workspaces']} workspaces, "
        f"{run['duration_s']} s, {run['seeded_posts']:,} posts seeded in {run['seed_s']} s"
    )
    head = f"{'request':<44} {'reqs':>7} {'req/s':>7} {'fail':>5} {'4xx ok':>6}"
    print(head + f" {'p50':>6} {'p95':>6} {'p99':>6} {'max':>7}  (ms)")
    for row in run["rows"]:
        print(
            f"{row['name'][:44]:<44} {row['requests']:>7} {row['rps']:>7} {row['failures']:>5} "
            f"{_expected(run['statuses'], row['name']):>6} {_num(row['p50_ms'])} "
            f"{_num(row['p95_ms'])} {_num(row['p99_ms'])} {row['max_ms']:>7.0f}"
        )
    print(
        f"5xx: {run['http_5xx']}, no answer: {run['no_answer']}, expected 409/429: "
        f"{run['expected_4xx']}; server CPU {run['server_cpu_s']} s "
        f"({run['server_cpu_s_per_1k']} s per 1,000 requests), Locust CPU "
        f"{run['locust_cpu_s']} s; server exit {run['server_exit']}"
    )
    for failure in run["failures"]:
        print(f"FAILED {failure['occurrences']}x {failure['name']}: {failure['error']}")
    for line in run["server_errors"]:
        print(f"server: {line}")
    for line in run["locust_cpu_warnings"]:
        print(f"locust: {line}")


def _num(value: float | None) -> str:
    return f"{'-':>6}" if value is None else f"{value:>6.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=10.0, help="users started per second")
    parser.add_argument("--duration-s", type=int, default=60)
    parser.add_argument(
        "--wait-s", type=float, nargs=2, default=[0.5, 1.5], help="each user's pause, min max"
    )
    parser.add_argument("--workspaces", type=int, default=10)
    parser.add_argument("--channels", type=int, default=6, help="per workspace")
    parser.add_argument("--posts", type=int, default=20_000, help="seeded, over all workspaces")
    parser.add_argument(
        "--key-rate", type=int, default=1000, help="api.key_requests_per_s (0: no budget)"
    )
    parser.add_argument("--database-url", default=DEFAULT_PG_URL, help="PostgreSQL server")
    args = parser.parse_args()
    if importlib.util.find_spec("locust") is None:
        print("locust is not installed: pip install -e '.[load]' (or make bench-load)")
        return 2
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed = False
    for kind in kinds:
        run = asyncio.run(run_once(kind, args))
        _print(run)
        out = RESULTS / f"api-load-{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(run, indent=2))
        print(f"results: {out}")
        failed |= any(r["failures"] for r in run["rows"]) or run["server_exit"] != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
