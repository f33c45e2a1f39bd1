"""Herald and its peers, side by side: the same job, the same simulator, interleaved rounds.

    make services && .venv/bin/pip install -e '.[peers]'
    .venv/bin/python -m bench.peers.run --posts 20000 --rounds 3

Each round runs every system once, in order, and the ceiling (an aiohttp client alone, see
:mod:`bench.ceiling`). For each system: a schema of its own with the posts table and the
outcomes table, the run's Redis database flushed, the system's ``setup``, its worker
processes started (each in a session of its own) and warmed up with ``in_flight`` posts the
simulator must hold before the clock starts. Then the clock and /proc's CPU counters run from
the moment the posts are written, all due now, to the moment the simulator holds all of them
(or to its last new post, if none has come for a minute: the missing ones count as lost);
the system's ``enqueue`` process runs within that span and its CPU counts as the system's
(as Herald's dispatcher's does). The simulator judges: duplicates (resends it took, and those
it refused as duplicates), posts never published, limit violations, the most requests it saw
in flight at once. Peak RSS is the sum of the system's processes' high-water marks.

The servers (PostgreSQL, Redis, the simulator) are shared and not counted in a system's CPU.
Results: one JSON line per run on stdout, the whole in ``bench/results/peers-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from bench.ceiling import ceiling
from bench.distributed import cpu_s, group_pids
from bench.peers.common import OPEN_LIMITS, OUTCOMES_DDL, POSTS_DDL, Job, item

from herald.config import Settings
from herald.demo.chaos.scenario import merged
from herald.demo.simulator_process import SimulatorProcess
from herald.domain import Platform
from herald.simulator import LatencyModel, SimulatorConfig

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
_PAGES = 40
_STALL_S = 60.0  # no new post for this long: the run is over, and what is missing is lost

#: name: (module, the job's extra settings)
SYSTEMS: dict[str, tuple[str, dict[str, Any]]] = {
    "herald-postgres": ("bench.peers.herald_embedded", {"store": "postgres"}),
    "herald-sqlite": ("bench.peers.herald_embedded", {"store": "sqlite"}),
    "seed": ("bench.peers.seed", {}),
    "celery-prefork": ("bench.peers.celery_peer", {"pool": "prefork"}),
    "celery-threads": ("bench.peers.celery_peer", {"pool": "threads"}),
    "dramatiq": ("bench.peers.dramatiq_peer", {}),
    "arq": ("bench.peers.arq_peer", {}),
    "arq-fastpoll": ("bench.peers.arq_peer", {"poll_delay": 0.05}),
    "procrastinate": ("bench.peers.procrastinate_peer", {}),
}


# -- processes and their CPU ---------------------------------------------------------------
def named_pids(*names: str) -> list[int]:
    """The live processes whose command name is one of ``names`` (the shared servers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in names:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def servers_cpu_s(sim: SimulatorProcess) -> dict[str, float]:
    """CPU of the shared servers so far: PostgreSQL (the postmaster counts its ended
    backends), Redis, the simulator."""
    return {
        "postgres": cpu_s(named_pids("postgres")),
        "redis": cpu_s(named_pids("redis-server")),
        "simulator": cpu_s([sim.pid] if sim.pid is not None else []),
    }


def peak_rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Workers:
    """A system's worker processes, each the leader of a session of its own."""

    def __init__(self, argvs: list[list[str]], env: dict[str, str], log: Path) -> None:
        self._argvs, self._env, self._log = argvs, env, log
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        with self._log.open("ab") as log:
            for argv in self._argvs:
                self.processes.append(
                    subprocess.Popen(
                        argv,
                        env=self._env,
                        cwd=REPO,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                    )
                )

    def pids(self) -> list[int]:
        # A session leader leads its process group too: the group is the worker and the
        # children it forked (a prefork pool).
        return [pid for p in self.processes for pid in group_pids(p.pid)]

    def check(self) -> None:
        for p in self.processes:
            if p.poll() is not None:
                raise RuntimeError(f"a worker exited ({p.returncode}): see {self._log}")

    def stop(self, grace_s: float = 15.0) -> None:
        for p in self.processes:
            # The leader only: a system forwards the stop to its own children, and some
            # (dramatiq) take a second SIGTERM, from the group, as "kill now".
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for p in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # its children too, if it left any
            p.wait()


# -- one system, once ----------------------------------------------------------------------
async def _run_role(module: str, role: str, env: dict[str, str], log: Path) -> None:
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, role, env=env, cwd=REPO, stdout=out, stderr=out
        )
        code = await process.wait()
    if code != 0:
        raise RuntimeError(f"{module} {role} exited {code}: see {log}")


async def _write_posts(pg: asyncpg.Connection, job: Job, first: int, count: int) -> None:
    now = datetime.now(UTC)
    rows = []
    for n in range(first, first + count):
        it = item(job, n)
        rows.append((n, it.key, it.page_id, it.token, it.text, now))
    await pg.copy_records_to_table("posts", records=rows, schema_name=job.schema)


async def _until_held(
    sim: SimulatorProcess,
    base: int,
    count: int,
    workers: Workers,
    *,
    stall_s: float,
    enqueue: asyncio.Task[None] | None = None,
) -> bool:
    """Wait until the simulator holds ``count`` more posts than ``base``: True; False once
    none has come for ``stall_s`` (the rest is lost, and counted so)."""
    held, last_progress = 0, time.monotonic()
    while held < count:
        workers.check()
        if enqueue is not None and enqueue.done() and enqueue.exception() is not None:
            await enqueue  # it failed: nothing more will come
        now_held = (await sim.client.audit.summary())["posts"] - base
        if now_held > held:
            held, last_progress = now_held, time.monotonic()
        elif time.monotonic() - last_progress > stall_s:
            return False
        await asyncio.sleep(0.05)
    return True


def _environment(mod: ModuleType, job: Job) -> dict[str, str]:
    env = {**os.environ, **job.to_env()}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    extra = getattr(mod, "environment", None)
    if extra is not None:
        env.update(extra(job))
    return env


async def run_once(
    name: str, base_job: Job, posts: int, work: Path, sim: SimulatorProcess
) -> dict[str, Any]:
    module, extra = SYSTEMS[name]
    mod = importlib.import_module(module)
    schema = f"peer_{secrets.token_hex(4)}"
    job = replace(
        base_job,
        run_id=secrets.token_hex(6),
        schema=schema,
        extra={
            **base_job.extra,
            **extra,
            "sqlite_path": str(work / f"{schema}.db"),
            "secrets_path": str(work / f"{schema}-secrets.json"),
        },
    )
    pg = await asyncpg.connect(job.database_url)
    redis = aioredis.Redis.from_url(job.redis_url)
    log = work / f"{name}.log"
    workers: Workers | None = None
    try:
        await redis.flushdb()
        await pg.execute(f"CREATE SCHEMA {schema}")
        await pg.execute(POSTS_DDL.format(schema=schema))
        await pg.execute(OUTCOMES_DDL.format(schema=schema))
        env = _environment(mod, job)
        if getattr(mod, "SETUP", False):
            await _run_role(module, "setup", env, log)
        workers = Workers(mod.workers(job), env, log)
        workers.start()
        # Warm up: the workers are up, connected and have published before the clock runs.
        warm = replace(job, first=posts, count=job.in_flight)
        base = (await sim.client.audit.summary())["posts"]
        await _write_posts(pg, job, posts, job.in_flight)
        await _run_role(module, "enqueue", _environment(mod, warm), log)
        if not await _until_held(sim, base, job.in_flight, workers, stall_s=120):
            raise TimeoutError("the warm-up's posts did not all reach the simulator")

        before = await sim.client.audit.summary()
        cpu0, children0 = cpu_s(workers.pids()), children_cpu_s()
        servers0 = servers_cpu_s(sim)
        started = time.monotonic()
        await _write_posts(pg, job, 0, posts)
        enqueue = asyncio.create_task(
            _run_role(module, "enqueue", _environment(mod, replace(job, count=posts)), log)
        )
        complete = await _until_held(
            sim, before["posts"], posts, workers, stall_s=_STALL_S, enqueue=enqueue
        )
        elapsed = time.monotonic() - started - (0 if complete else _STALL_S)
        cpu = cpu_s(workers.pids()) - cpu0
        servers = {k: v - servers0[k] for k, v in servers_cpu_s(sim).items()}
        rss = peak_rss_mb(workers.pids())
        await enqueue
        producer = children_cpu_s() - children0
        await asyncio.sleep(0.5)  # answers the simulator gave as the clock stopped
        after = await sim.client.audit.summary()
    finally:
        if workers is not None:
            await asyncio.to_thread(workers.stop)
        await redis.aclose()
        await pg.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await pg.execute(f"DROP SCHEMA IF EXISTS {schema}_herald CASCADE")
        await pg.close()
    duplicates = (after["duplicates"] + after["duplicates_refused"]) - (
        before["duplicates"] + before["duplicates_refused"]
    )
    published = after["posts"] - before["posts"] - (after["duplicates"] - before["duplicates"])
    return {
        "system": name,
        "deliveries_per_s": round(min(published, posts) / elapsed, 1),
        "cpu_s_per_1k": round((cpu + producer) / posts * 1000, 3),
        "enqueue_cpu_s_per_1k": round(producer / posts * 1000, 3),
        # Not the system's own, but what it makes the shared servers spend per 1,000.
        **{f"{k}_cpu_s_per_1k": round(v / posts * 1000, 3) for k, v in servers.items()},
        "peak_rss_mb": rss,
        "lost": max(0, posts - published),
        "duplicates": duplicates,
        "limit_violations": after["limit_violations"] - before["limit_violations"],
        "max_in_flight": after["max_concurrency"]["facebook"],
    }


# -- the rounds -----------------------------------------------------------------------------
async def bench(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings.model_validate(OPEN_LIMITS)
    p99_ms = args.latency_p99_ms if args.latency_p99_ms is not None else 4 * args.latency_ms
    latency = LatencyModel(median_s=args.latency_ms / 1000, p99_s=p99_ms / 1000)
    config = SimulatorConfig.from_settings(settings, latency=latency, seed=args.seed)
    runs: list[dict[str, Any]] = []
    async with SimulatorProcess(config) as sim:
        accounts = [await sim.client.add_account(Platform.FACEBOOK) for _ in range(_PAGES)]
        overrides = await sim.client.settings_overrides()
        job = Job(
            run_id="",
            graph_url=overrides["facebook"]["base_url"],
            pages=[(a.external_id, a.credentials["access_token"]) for a in accounts],
            database_url=args.database_url,
            schema="",
            redis_url=args.redis_url,
            in_flight=args.in_flight,
            extra={"herald_sections": merged(overrides, OPEN_LIMITS)},
        )
        with tempfile.TemporaryDirectory(prefix="herald-peers-") as tmp:
            work = Path(tmp)
            for round_ in range(args.rounds):
                for name in ["ceiling", *args.systems]:
                    if name == "ceiling":
                        run = {
                            "system": "ceiling",
                            **await ceiling(
                                replace(job, run_id=secrets.token_hex(6), count=args.posts)
                            ),
                        }
                    else:
                        try:
                            run = await run_once(name, job, args.posts, work, sim)
                        except Exception as exc:  # one system's trouble: the others go on
                            run = {"system": name, "error": str(exc)}
                            log = work / f"{name}.log"
                            if log.exists():
                                run["log_tail"] = log.read_text(errors="replace")[-2000:]
                    run["round"] = round_
                    runs.append(run)
                    print(json.dumps(run), flush=True)
    return {"runs": runs, "medians": medians(runs)}


def medians(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per system: the median of each figure, its spread, and the share of the ceiling of
    the same round (median of the rounds' shares)."""
    ceilings = {r["round"]: r["deliveries_per_s"] for r in runs if r["system"] == "ceiling"}
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r["system"] for r in runs):
        ok = [r for r in runs if r["system"] == name and "error" not in r]
        if not ok:
            out[name] = {"error": next(r["error"] for r in runs if r["system"] == name)}
            continue
        rates = [r["deliveries_per_s"] for r in ok]
        cpus = [r["cpu_s_per_1k"] for r in ok]
        out[name] = {
            "deliveries_per_s": statistics.median(rates),
            "deliveries_per_s_range": [min(rates), max(rates)],
            "cpu_s_per_1k": statistics.median(cpus),
            "cpu_s_per_1k_range": [min(cpus), max(cpus)],
            "share_of_ceiling": round(
                statistics.median(r["deliveries_per_s"] / ceilings[r["round"]] for r in ok), 3
            ),
            "peak_rss_mb": statistics.median(r.get("peak_rss_mb", 0) for r in ok),
            **{
                f"{k}_cpu_s_per_1k": statistics.median(r.get(f"{k}_cpu_s_per_1k", 0) for r in ok)
                for k in ("postgres", "redis", "simulator")
            },
            "lost": sum(r.get("lost", 0) for r in ok),
            "duplicates": sum(r.get("duplicates", 0) for r in ok),
            "limit_violations": sum(r.get("limit_violations", 0) for r in ok),
            "rounds": len(ok),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="simulator median")
    parser.add_argument("--latency-p99-ms", type=float, help="its p99 (default: 4x the median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    result = asyncio.run(bench(args))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"peers-{stamp}.json"
    path.write_text(json.dumps({"args": vars(args), **result}, indent=1))
    print(json.dumps(result["medians"], indent=1))
    print(f"written: {path.relative_to(REPO)}", file=sys.stderr)
    return 0 if all("error" not in r for r in result["runs"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
