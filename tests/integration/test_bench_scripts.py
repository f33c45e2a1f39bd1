"""The benchmark scripts run, scaled down: figures in docs/benchmarks.md come from them, so a
script that no longer matches the code must fail here rather than on the next measurement."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.conftest import PG_URL, RABBIT_URL, REDIS_URL

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BENCH = Path(__file__).parents[2] / "bench"
#: The scripts that use no store, and take no --database-url.
NO_DATABASE = (
    "api.py",
    "limiter.py",
    "redis_queue.py",
    "rabbit_queue.py",
    "rabbit_cpu.py",
    "media_stream.py",
)


@pytest.mark.parametrize(
    "args",
    [
        ["drivers.py", "--rows", "300", "--reps", "1", "--reads", "50", "--row-batches", "1"],
        ["run.py", "--scenario", "burst", "--posts", "60", "--reps", "1", "--store", "both"],
        ["api.py", "--posts", "20", "--rows", "50", "--concurrency", "1", "--store", "both"],
        ["restarts.py", "--kills", "2", "--posts", "40"],
        ["imports.py", "--rows", "300", "--channels", "3", "--idle-s", "0.5", "--store", "both"],
        pytest.param(
            ["limiter.py", "--admissions", "200", "--reps", "1", "--redis-url", REDIS_URL],
            marks=pytest.mark.redis,
        ),
        pytest.param(
            [
                "redis_queue.py",
                *("--jobs", "300", "--batch", "50", "--workers", "1", "2"),
                *("--redis-url", REDIS_URL),
            ],
            marks=pytest.mark.redis,
        ),
        pytest.param(
            [
                "rabbit_queue.py",
                *("--jobs", "300", "--batch", "50", "--workers", "1", "2"),
                *("--rabbitmq-url", RABBIT_URL),
            ],
            marks=pytest.mark.rabbitmq,
        ),
        pytest.param(
            [
                "rabbit_cpu.py",
                *("--jobs", "80", "--put-jobs", "200", "--every-ms", "5", "--reps", "1"),
                *("--rabbitmq-url", RABBIT_URL),
            ],
            marks=pytest.mark.rabbitmq,
        ),
        [
            "takeover.py",
            *("--store", "both", "--posts-per-channel", "30", "--kill-after", "10"),
            *("--heartbeat-s", "0.5", "--dead-after-s", "2", "--timeout-s", "60"),
        ],
        pytest.param(
            [
                "distributed.py",
                # The quota part as it is run (it fails below 95 % of any quota): settled
                # once no post went out for 20 s.
                *("--posts", "200", "--reps", "1", "--configs", "embedded", "redis:1"),
            ],
            marks=[pytest.mark.redis, pytest.mark.slow],
        ),
        [
            "backlog.py",
            *("--store", "both", "--deliveries", "2000", "--channels", "10", "--burst", "100"),
            *("--idle-s", "1", "--settle-s", "0.2", "--idle-recheck-s", "0.5"),
        ],
        ["media_stream.py", "--size-mib", "16", "--chunk-mib", "1", "--no-length"],
        pytest.param(
            [
                "load/drive.py",
                *("--store", "sqlite", "--users", "4", "--spawn-rate", "4"),
                *("--duration-s", "5", "--wait-s", "0.05", "0.2"),
                *("--workspaces", "2", "--channels", "3", "--posts", "300"),
            ],
            marks=pytest.mark.skipif(
                find_spec("locust") is None,
                reason="Locust is in the optional load group: pip install -e '.[load]'",
            ),
        ),
        ["sustained.py", "--posts-per-minute", "600", "--minutes", "0.2", "--store", "both"],
    ],
    ids=[
        "drivers",
        "engine",
        "api",
        "restarts",
        "imports",
        "limiter",
        "redis-queue",
        "rabbit-queue",
        "rabbit-cpu",
        "takeover",
        "distributed",
        "backlog",
        "media-stream",
        "api-load",
        "sustained",
    ],
)
def test_a_benchmark_script_runs(tmp_path, args):
    env = {
        **os.environ,
        "HERALD_BENCH_RESULTS": str(tmp_path),
        "HERALD_BENCH_DATABASE_URL": PG_URL,
    }
    script, *rest = args
    if script not in NO_DATABASE:
        rest += ["--database-url", PG_URL]
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *rest],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_quick_benchmark_rewrites_its_own_section_and_draws_its_plots(tmp_path):
    """bench/quick.py: the generated part of benchmarks.md is replaced, the rest kept."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\nWritten by hand.\n\n"
        "<!-- bench-quick:begin (old) -->\nstale figures\n<!-- bench-quick:end -->\n\nMore.\n"
    )
    env = {**os.environ, "HERALD_BENCH_RESULTS": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(BENCH / "quick.py"), "--scale", "tiny", "--out", str(tmp_path)],
        env={**env, "HERALD_BENCH_DATABASE_URL": PG_URL},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = doc.read_text()
    assert "Written by hand." in text
    assert text.endswith("More.\n")
    assert "stale figures" not in text
    assert text.count("<!-- bench-quick:begin") == 1
    assert "| burst | postgres |" in text
    assert "| precision | sqlite |" in text
    for name in ("bench-throughput.png", "bench-lateness.png", "bench-backlog.png"):
        assert (tmp_path / "img" / name).read_bytes().startswith(b"\x89PNG")


def test_the_quick_benchmark_refuses_stray_markers(tmp_path):
    """A begin marker without its end: rewriting would delete the hand-written text after it."""
    doc = tmp_path / "benchmarks.md"
    doc.write_text("<!-- bench-quick:begin (old) -->\nstale\n\nHand-written.\n")
    # In a process of its own: the script puts bench/ on its import path.
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); import quick; quick._rewrite("
    code += f"__import__('pathlib').Path({str(doc)!r}), 'new')"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert "not one begin then one end" in done.stderr
    assert doc.read_text().endswith("Hand-written.\n")
