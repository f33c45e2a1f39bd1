"""A small live deployment scraped by a real Prometheus: what the dashboards' test evaluates
every query against, and what ``snapshot.py`` plots.

``async with LiveDeployment(workdir) as live``: the platform simulator (its own process), a
Redis of its own (broker and shared limits), a PostgreSQL schema of its own, then
``herald serve`` (API and engine, region ``default``), ``herald dispatcher`` and two
``herald worker`` processes (regions ``default`` and ``eu-west-1``) on Redis Streams, and
``prometheus`` scraping all four every second as the jobs ``herald-api``,
``herald-dispatcher`` and ``herald-worker`` (with ``deploy/prometheus/rules.yaml`` when it
exists). :meth:`LiveDeployment.publish` schedules posts through the API, spread over a span,
to Facebook and LinkedIn channels in both regions (posts due too long ago expire); Facebook
fails and throttles a share of its calls, so retries and rate-limit waits happen, and
:meth:`LiveDeployment.take_down` makes an outage; a webhook receives the published events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import yaml  # type: ignore[import-untyped]
from aiohttp import web
from cryptography.fernet import Fernet

from herald.config import Settings
from herald.demo.servers import OwnRedis
from herald.demo.simulator_process import SimulatorProcess
from herald.domain import MediaKind, Platform, utcnow
from herald.simulator import (
    CallFaults,
    CallKind,
    FaultConfig,
    LatencyModel,
    ListingLag,
    SimulatorConfig,
)

__all__ = ["RULES", "LiveDeployment", "free_port"]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"
PG_URL = os.environ.get("HERALD_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REGIONS = ("default", "eu-west-1")
PLATFORMS = (Platform.FACEBOOK, Platform.LINKEDIN)
_METRICS_TOKEN = "scrape-" + secrets.token_hex(8)

#: Engine tuning for a run of seconds: quick checks, short backoffs and pauses.
_ENGINE = {
    "HERALD_ENGINE__CHECK_DELAY_S": "0.2",
    "HERALD_ENGINE__LISTING_SETTLE_S": "2",
    "HERALD_ENGINE__BACKOFF_BASE_S": "0.05",
    "HERALD_ENGINE__BACKOFF_CAP_S": "0.5",
    "HERALD_ENGINE__THROTTLE_PAUSE_S": "0.5",
    "HERALD_ENGINE__IDLE_RECHECK_S": "1",
    "HERALD_ENGINE__HEARTBEAT_S": "0.5",
    "HERALD_ENGINE__SHUTDOWN_GRACE_S": "5",
    "HERALD_ENGINE__OUTAGE_ERRORS": "2",
    # Posts scheduled a minute ago (publish(late_s=60)) expire unsent; the others do not.
    "HERALD_ENGINE__MAX_LATENESS_S": "30",
    "HERALD_BROKER__HANDOFF_S": "5",
    "HERALD_LOG_LEVEL": "WARNING",
    # The workload is scheduled in one go by one API key.
    "HERALD_API__KEY_BURST": "10000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(check: Callable[[], Awaitable[bool]], within_s: float, what: str) -> None:
    """Wait for ``check`` to hold, asking every 0.2 s; TimeoutError naming ``what``."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {within_s} s")
        await asyncio.sleep(0.2)


class LiveDeployment:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.schema = f"herald_live_{secrets.token_hex(5)}"
        self.api_port = free_port()
        self.dispatcher_port = free_port()
        self.worker_ports = {region: free_port() for region in REGIONS}
        self.prometheus_port = free_port()
        self.prometheus_url = f"http://127.0.0.1:{self.prometheus_port}"
        self.sim = SimulatorProcess(_simulator_config())
        self.redis = OwnRedis()
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._logs: dict[str, Path] = {}
        self._hooks: web.AppRunner | None = None
        self._hook_port = free_port()
        self._channels: dict[Platform, list[str]] = {platform: [] for platform in PLATFORMS}
        self._api: httpx.AsyncClient | None = None
        self._overrides: dict[str, dict[str, str]] = {}
        self._secret_key = Fernet.generate_key().decode()

    async def __aenter__(self) -> LiveDeployment:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def database_url(self) -> str:
        return f"{PG_URL}?schema={self.schema}"

    def _env(self) -> dict[str, str]:
        """Every process's environment; the broker is given to those that use it."""
        env = dict(os.environ) | _ENGINE
        # The connectors' URLs, and egress allowed to the simulator's host (where the webhook
        # receiver listens too).
        for section, values in self._overrides.items():
            for key, value in values.items():
                env[f"HERALD_{section.upper()}__{key.upper()}"] = value
        return env | {
            "HERALD_DATABASE_URL": self.database_url,
            "HERALD_SECRET_KEYS": self._secret_key,
            "HERALD_LIMITS__REDIS_URL": self.redis.url,
            "HERALD_LIMITS__BACKEND": "redis",
            "HERALD_API__PORT": str(self.api_port),
            "HERALD_API__METRICS_TOKEN": _METRICS_TOKEN,
        }

    async def _start(self) -> None:
        await self.sim.start()
        self._overrides = await self.sim.client.settings_overrides()
        self.redis.start()
        await self._start_hooks()
        env = self._env()
        await self._herald(env, "migrate", wait=True)
        key = await self._herald(env, "admin", "create-workspace", "Live", wait=True)
        self._api = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.api_port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        await self._herald(env, "serve")
        broker = ("--broker", self.redis.url)
        await self._herald(env, "dispatcher", *broker, "--probe-port", str(self.dispatcher_port))
        for region, port in self.worker_ports.items():
            await self._herald(
                env, "worker", *broker, "--region", region, "--probe-port", str(port)
            )
        await self._start_prometheus()
        await until(self._api_ready, 60, "herald serve answering /readyz")
        await self._create_channels()
        await until(self._targets_up, 60, "every Prometheus target up")

    async def _herald(self, env: dict[str, str], *args: str, wait: bool = False) -> str:
        name = f"worker-{args[args.index('--region') + 1]}" if args[0] == "worker" else args[0]
        log = self.workdir / f"{name}.log"
        self._logs[name] = log
        with log.open("ab") as err:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "herald.cli",
                *args,
                env=env,
                stdout=asyncio.subprocess.PIPE if wait else asyncio.subprocess.DEVNULL,
                stderr=err,
            )
        if not wait:
            self._processes[name] = process
            return ""
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        if process.returncode != 0:
            raise RuntimeError(f"herald {' '.join(args)} failed: {log.read_text()[-2000:]}")
        lines = out.decode().strip().splitlines()
        return lines[-1] if lines else ""

    async def _start_hooks(self) -> None:
        async def receive(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hooks", receive)
        self._hooks = web.AppRunner(app)
        await self._hooks.setup()
        await web.TCPSite(self._hooks, "127.0.0.1", self._hook_port).start()

    async def _start_prometheus(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(
                "prometheus is not installed: apt-get install -y prometheus "
                "(scripts/tools.sh installs it for make test)"
            )
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.prometheus_config(), sort_keys=False))
        log = self.workdir / "prometheus.log"
        self._logs["prometheus"] = log
        with log.open("ab") as err:
            self._processes["prometheus"] = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.prometheus_port}",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
            )

    def prometheus_config(self) -> dict[str, Any]:
        def job(name: str, ports: list[int], **more: Any) -> dict[str, Any]:
            targets = [f"127.0.0.1:{port}" for port in ports]
            return {"job_name": name, **more, "static_configs": [{"targets": targets}]}

        config: dict[str, Any] = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                job("herald-api", [self.api_port], authorization={"credentials": _METRICS_TOKEN}),
                job("herald-dispatcher", [self.dispatcher_port]),
                job("herald-worker", list(self.worker_ports.values())),
            ],
        }
        if RULES.exists():
            config["rule_files"] = [str(RULES)]
        return config

    async def _api_ready(self) -> bool:
        self._check_alive()
        try:
            return (await self.api.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    async def _targets_up(self) -> bool:
        self._check_alive()
        try:
            answer = await self.prometheus("/api/v1/targets")
        except httpx.TransportError:
            return False
        targets = answer["activeTargets"]
        return len(targets) == 4 and all(t["health"] == "up" for t in targets)

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.returncode is not None:
                tail = self._logs[name].read_text()[-3000:]
                raise RuntimeError(f"{name} exited ({process.returncode}):\n{tail}")

    @property
    def api(self) -> httpx.AsyncClient:
        if self._api is None:
            raise RuntimeError("not started")
        return self._api

    async def prometheus(self, path: str, **params: str) -> Any:
        """``data`` of a Prometheus HTTP API answer (``path`` under its URL)."""
        async with httpx.AsyncClient(base_url=self.prometheus_url, timeout=10) as client:
            answer = (await client.get(path, params=params)).raise_for_status().json()
        if answer["status"] != "success":
            raise RuntimeError(f"{path} {params}: {answer}")
        return answer["data"]

    async def _create_channels(self) -> None:
        answer = await self.api.post(
            "/v1/webhooks",
            json={
                "url": f"http://127.0.0.1:{self._hook_port}/hooks",
                "events": ["delivery.published"],
            },
        )
        answer.raise_for_status()
        for platform in PLATFORMS:
            for region in REGIONS:
                account = await self.sim.client.add_account(platform)
                body = {
                    "platform": platform.value,
                    "external_id": account.external_id,
                    "name": f"{platform.value} {region}",
                    "credentials": account.credentials,
                    "region": region,
                }
                answer = await self.api.post("/v1/channels", json=body)
                answer.raise_for_status()
                self._channels[platform].append(answer.json()["id"])

    async def publish(self, posts: int, over_s: float, *, late_s: float = 0.0) -> None:
        """Schedule ``posts`` posts to every channel, due evenly over the next ``over_s``
        seconds from ``late_s`` seconds ago."""
        image = await self.sim.client.media_url(MediaKind.IMAGE, "live.jpg", size=4096)
        # A Facebook album (two photo uploads, then the post); a LinkedIn post takes one image.
        pictures = {Platform.FACEBOOK: 2, Platform.LINKEDIN: 1}
        start = utcnow() - timedelta(seconds=late_s)
        for number in range(posts):
            due = start + timedelta(seconds=over_s * number / posts)
            for platform, channels in self._channels.items():
                media = [
                    {"url": f"{image}&i={number}-{i}", "kind": "image"}
                    for i in range(pictures[platform])
                ]
                answer = await self.api.post(
                    "/v1/posts",
                    json={
                        "channel_ids": channels,
                        "content": {"text": f"live post {number}", "media": media},
                        "scheduled_at": due.isoformat(),
                    },
                )
                answer.raise_for_status()

    async def take_down(self, platform: Platform, for_s: float) -> None:
        """The platform refuses connections for ``for_s`` seconds: requests not sent, and
        after ``outage_errors`` of them an outage."""
        await self.sim.client.take_down(platform, for_s=for_s)

    async def stop(self) -> None:
        for process in self._processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self._processes.values():
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._processes.clear()
        if self._api is not None:
            await self._api.aclose()
        if self._hooks is not None:
            await self._hooks.cleanup()
        with contextlib.suppress(OSError):
            await self.sim.stop()
        self.redis.stop()
        conn = await asyncpg.connect(PG_URL)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            await conn.close()


def _simulator_config() -> SimulatorConfig:
    """Facebook throttles and fails a share of its calls: an album's photo uploads make no
    post, so their failures are retried; its look-ups fail too. Waits and retries to be seen."""
    others = CallFaults(error_rate=0.1)
    faults = {
        Platform.FACEBOOK: FaultConfig(
            error_rate=0.1,
            throttle_rate=0.1,
            retry_after_s=1,
            calls={kind: others for kind in CallKind if kind is not CallKind.PUBLISH},
        ),
    }
    return SimulatorConfig.from_settings(
        Settings(),
        latency=LatencyModel(median_s=0.02, p99_s=0.1),
        faults=faults,
        listing_lag=ListingLag(median_s=0.2, p99_s=1.0, max_s=2.0),
        seed=11,
    )
