"""The peers' benchmark runs end to end on a small job, so that it cannot rot between the runs
that fill docs/benchmarks.md: Herald (on SQLite, its default) and the seed design, whose
dependencies are Herald's own (the other peers need the optional ``peers`` group)."""

from __future__ import annotations

import argparse

import pytest
from bench.peers import run

from tests.conftest import PG_URL

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(180)]


async def test_herald_and_the_seed_design_do_the_same_job_and_the_simulator_judges_both():
    args = argparse.Namespace(
        systems=["herald-sqlite", "seed"],
        posts=60,
        rounds=1,
        in_flight=4,
        latency_ms=0.0,
        latency_p99_ms=None,
        seed=3,
        database_url=PG_URL,
        redis_url="redis://127.0.0.1:6379/14",
    )
    result = await run.bench(args)
    by_system = {r["system"]: r for r in result["runs"]}
    assert set(by_system) == {"ceiling", "herald-sqlite", "seed"}
    for name in ("herald-sqlite", "seed"):
        got = by_system[name]
        assert "error" not in got, got
        assert (got["lost"], got["duplicates"], got["limit_violations"]) == (0, 0, 0)
        assert got["cpu_s_per_1k"] > 0
        assert got["peak_rss_mb"] > 0
    assert result["medians"]["seed"]["share_of_ceiling"] > 0
