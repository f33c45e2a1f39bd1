"""A real `herald serve` process: API, engine and webhook sender in one; SIGTERM stops all."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from datetime import timedelta

import httpx
import pytest
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families

from herald import __version__
from herald.config import Settings
from herald.domain import Platform, utcnow
from herald.simulator import LatencyModel, Simulator, SimulatorConfig
from herald.testing import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
async def sim():
    config = SimulatorConfig.from_settings(
        Settings(), latency=LatencyModel(median_s=0.002, p99_s=0.01), seed=9
    )
    async with Simulator(config) as simulator:
        yield simulator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


METRICS_TOKEN = "scrape-me"  # /metrics answers only with it


def assert_serve_metrics(text: str) -> None:
    """What `herald serve` exports once it published one post and holds another: each family
    once (the API's, the engine's and the store-wide gauges side by side)."""
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), names
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return found.get((name, tuple(sorted(labels.items()))))

    info = {"role": "serve", "version": __version__, "region": "default"}
    assert value("herald_process_info", **info) == 1.0
    assert value("herald_rate_limit_grants_total", platform="facebook") == 1.0
    assert value("herald_delivery_sent_lateness_seconds_count", platform="facebook") == 1.0
    assert value("herald_quota_used", platform="facebook", rule="page_calls") == 1.0
    assert (value("herald_quota_allowed", platform="facebook", rule="page_calls") or 0) > 1
    assert value("herald_store_deliveries", state="scheduled") == 1.0
    assert value("herald_webhook_backlog") == 0.0
    assert value("herald_channels_needing_reauth", platform="facebook") == 0.0
    assert value("herald_limiter_up") == 1.0
    assert "herald_broker_up" not in names  # no broker in the single-box deployment


def environment(sim: Simulator, db: str, port: int) -> dict[str, str]:
    env = dict(os.environ)
    for section, values in sim.settings_overrides().items():
        for key, value in values.items():
            env[f"HERALD_{section.upper()}__{key.upper()}"] = value
    env.update(
        {
            "HERALD_DB": db,
            "HERALD_API__PORT": str(port),
            "HERALD_SECRET_KEYS": Fernet.generate_key().decode(),
            "HERALD_LOG_LEVEL": "INFO",
            "HERALD_ENGINE__SQLITE_SYNCHRONOUS": "NORMAL",
            "HERALD_ENGINE__SHUTDOWN_GRACE_S": "5",
            # Far beyond the test's patience: only the API's wake-up can make it publish.
            "HERALD_ENGINE__IDLE_RECHECK_S": "120",
            "HERALD_ENGINE__LEASE_S": "300",
            "HERALD_API__METRICS_TOKEN": METRICS_TOKEN,
        }
    )
    return env


async def herald(env: dict[str, str], *args: str, **kw) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", *args, env=env, **kw
    )


async def test_serve_publishes_what_the_api_schedules_and_stops_on_sigterm(sim, tmp_path):
    port = free_port()
    env = environment(sim, str(tmp_path / "herald.db"), port)
    admin = await herald(env, "admin", "create-workspace", "Acme", stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(admin.communicate(), 30)
    assert admin.returncode == 0
    headers = {"Authorization": f"Bearer {out.decode().strip().splitlines()[-1]}"}

    server = await herald(env, "serve", stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=5) as api:

            async def up() -> bool:
                try:
                    return (await api.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, within_s=30, every_s=0.1)
            account = sim.add_account(Platform.FACEBOOK)
            channel = (
                await api.post(
                    "/v1/channels",
                    json={
                        "platform": "facebook",
                        "external_id": account.external_id,
                        "name": "Page",
                        "credentials": account.credentials,
                    },
                )
            ).json()
            now = await api.post(
                "/v1/posts",
                json={
                    "channel_ids": [channel["id"]],
                    "content": {"text": "published by herald serve"},
                    "scheduled_at": utcnow().isoformat(),
                },
            )
            later = await api.post(
                "/v1/posts",
                json={
                    "channel_ids": [channel["id"]],
                    "content": {"text": "still waiting"},
                    "scheduled_at": (utcnow() + timedelta(hours=1)).isoformat(),
                },
            )
            assert now.status_code == later.status_code == 201

            async def published() -> bool:
                post = (await api.get(f"/v1/posts/{now.json()['id']}")).json()
                return post["deliveries"][0]["status"] == "published"

            # The in-process engine is woken by the API: no wait for its idle recheck.
            await eventually(published, within_s=20, every_s=0.05)
            scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            metrics = (await api.get("/metrics", headers=scrape)).text
            assert 'herald_deliveries_total{outcome="published",platform="facebook"} 1.0' in metrics
            assert_serve_metrics(metrics)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(server.communicate(), 30)
    assert server.returncode == 0, err.decode()
    log = err.decode()
    for event in ("engine.stopped", "webhooks.stopped", "server.stopped"):
        assert event in log
    assert sim.audit.summary()["posts"] == 1
