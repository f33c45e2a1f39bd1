"""bench/redis_queue.py runs, scaled down: its figures are in docs/benchmarks.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL

pytestmark = [pytest.mark.redis, pytest.mark.slow]

BENCH = Path(__file__).parents[2] / "bench"


def test_the_redis_queue_benchmark_runs(tmp_path):
    env = {**os.environ, "HERALD_BENCH_RESULTS": str(tmp_path)}
    args = ["--jobs", "300", "--batch", "50", "--workers", "1", "2", "--redis-url", REDIS_URL]
    done = subprocess.run(
        [sys.executable, str(BENCH / "redis_queue.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(tmp_path.glob("redis-queue-*.json"))
