"""`herald chaos`, scaled down: engines SIGKILLed every few seconds, their database sessions
cut, a platform down, tight quotas and platform faults; judged from both ends.

The full-size runs and their figures are in docs/benchmarks.md; these keep the command and
the guarantees it checks from rotting.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PG_URL, REDIS_URL

pytestmark = pytest.mark.slow

_SMALL = [
    *("--deliveries", "200", "--spread-s", "10", "--outage-s", "8"),
    *("--kill-every-s", "3", "--terminate-every-s", "3", "--json"),
]


def chaos(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "herald.cli", "chaos", *_SMALL, *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    verdict = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == (0 if verdict["ok"] else 1), done.stderr
    # The engines' own last words (an engine that stopped by itself says why on stderr).
    verdict["stderr_tail"] = done.stderr[-3000:]
    return verdict


def assert_kept_every_promise(verdict: dict) -> None:
    assert verdict["kills"] >= 2
    assert verdict["outage_s"] >= 8
    assert (verdict["lost"], verdict["duplicates"], verdict["misrecorded"]) == (0, 0, 0), verdict
    assert verdict["limit_violations"] == 0, verdict
    assert verdict["cap_violations"] == 0, verdict
    assert verdict["engine_exits"] == 0, (verdict["engine_exit_details"], verdict["stderr_tail"])
    assert verdict["failed_for_outage"] == 0, verdict
    assert verdict["published"] > 0
    assert verdict["ok"]


def test_an_embedded_engine_outlives_kills_and_an_outage():
    assert_kept_every_promise(chaos("--store", "sqlite"))


@pytest.mark.postgres
@pytest.mark.redis
def test_engines_on_postgresql_outlive_kills_cut_sessions_and_an_outage():
    # The engines share their limits through Redis: together they keep to each limit whole.
    verdict = chaos(
        *("--store", "postgres", "--database-url", PG_URL, "--engines", "2"),
        *("--redis-url", REDIS_URL),
    )
    assert verdict["db_terminations"] > 0
    assert_kept_every_promise(verdict)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("broker", ["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def test_a_dispatcher_and_workers_outlive_kills_and_restarts(broker):
    # Three workers (two restricted to some platforms) and a dispatcher, through a broker and
    # a limits Redis of the run's own (a redis-server or a RabbitMQ node), each restarted once.
    verdict = chaos(
        *("--store", "postgres", "--database-url", PG_URL, "--broker", broker),
        *("--workers", "3"),
    )
    assert verdict["broker"] == broker
    assert verdict["worker_kills"] >= 2
    assert (verdict["dispatcher_kills"], verdict["broker_restarts"]) == (1, 1), verdict
    assert verdict["redis_restarts"] == 1, verdict
    assert_kept_every_promise(verdict)
