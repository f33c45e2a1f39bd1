"""A real `herald api` process stopped in the middle of a CSV import, then started again:
nothing of the half import stays, and the job says why (the restart mid-job of
docs/api.md, "CSV import")."""

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

from herald import __version__
from herald.domain import utcnow
from herald.testing import eventually

pytestmark = pytest.mark.slow

ROWS, CHANNELS = 10_000, 10  # long enough to be stopped while it stores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def herald(env: dict[str, str], *args: str, **kw) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", *args, env=env, **kw
    )


async def ready(api: httpx.AsyncClient) -> None:
    async def up() -> bool:
        try:
            return (await api.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(up, within_s=30, every_s=0.1)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
async def test_an_import_cut_short_by_its_process_leaves_nothing(tmp_path, stop):
    port = free_port()
    env = {
        **os.environ,
        "HERALD_DB": str(tmp_path / "herald.db"),
        "HERALD_SECRET_KEYS": Fernet.generate_key().decode(),
        "HERALD_API__PORT": str(port),
        "HERALD_API__KEY_REQUESTS_PER_S": "0",
        "HERALD_API__IMPORT_LEASE_S": "1",  # a killed process's import is taken over in ~1 s
        "HERALD_API__IMPORT_SPOOL_DIR": str(tmp_path / "spool"),
        "HERALD_ENGINE__SQLITE_SYNCHRONOUS": "NORMAL",
        "HERALD_API__METRICS_TOKEN": "scrape-me",
    }
    admin = await herald(env, "admin", "create-workspace", "Acme", stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(admin.communicate(), 30)
    headers = {"Authorization": f"Bearer {out.decode().strip().splitlines()[-1]}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
    ) as api:
        server = await herald(env, "api")
        try:
            await ready(api)
            channels = []
            for i in range(CHANNELS):
                body = {
                    "platform": "facebook",
                    "external_id": f"page-{i}",
                    "name": f"Page {i}",
                    "credentials": {"access_token": "x"},
                }
                channels.append((await api.post("/v1/channels", json=body)).json()["id"])
            due = (utcnow() + timedelta(days=1)).isoformat()
            targets = " ".join(channels)
            lines = "".join(f"{targets},row {i},{due}\n" for i in range(ROWS))
            posted = await api.post(
                "/v1/posts/import",
                content=f"channel_ids,text,scheduled_at\n{lines}".encode(),
                headers={"content-type": "text/csv"},
            )
            assert posted.status_code == 202, posted.text
            job_url = posted.headers["location"]

            async def storing() -> bool:
                job = (await api.get(job_url)).json()
                return job["state"] == "writing" and job["progress"]["posts_written"] > 0

            await eventually(storing, within_s=60, every_s=0.02)
        finally:
            server.send_signal(stop)
            await asyncio.wait_for(server.wait(), 30)
        assert server.returncode == (0 if stop == signal.SIGTERM else -signal.SIGKILL)

        again = await herald(env, "api")
        try:
            await ready(api)
            cut = (await api.get(job_url)).json()
            assert cut["state"] in ("writing", "failed"), cut  # never succeeded half-stored

            async def failed() -> bool:
                return bool((await api.get(job_url)).json()["state"] == "failed")

            await eventually(failed, within_s=30, every_s=0.1)
            job = (await api.get(job_url)).json()
            assert "stopped before it was done" in job["detail"]
            assert (await api.get(job["posts_url"])).json()["items"] == []
            assert (await api.get("/v1/posts")).json()["items"] == []
            assert list((tmp_path / "spool").iterdir()) == []  # the upload is gone too
            scrape = {"Authorization": "Bearer scrape-me"}
            metrics = (await api.get("/metrics", headers=scrape)).text
            assert (
                f'herald_process_info{{region="default",role="api",version="{__version__}"}} 1.0'
                in metrics
            )
            assert 'herald_store_deliveries{state="scheduled"} 0.0' in metrics
            assert "herald_webhook_backlog 0.0" in metrics
            assert "herald_limiter_up" not in metrics  # no engine in this process
        finally:
            again.send_signal(signal.SIGTERM)
            await asyncio.wait_for(again.wait(), 30)
        assert again.returncode == 0
