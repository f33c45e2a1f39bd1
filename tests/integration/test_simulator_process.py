"""The simulator in its own process: ``python -m herald.simulator`` and SimulatorClient."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from herald.domain import Platform
from herald.simulator import (
    FaultConfig,
    LatencyModel,
    SimulatorClient,
    SimulatorConfig,
    SimulatorUrls,
    UnknownAccount,
    media_bytes,
)

FB = Platform.FACEBOOK


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[SimulatorUrls]:
    config = SimulatorConfig(latency=LatencyModel(median_s=0, p99_s=0), seed=5)
    path = tmp_path / "simulator.json"
    path.write_text(config.model_dump_json())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "herald.simulator",
        str(path),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        yield SimulatorUrls.model_validate_json(line)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_separate_process_with_client(served: SimulatorUrls) -> None:
    async with SimulatorClient(served.admin) as sim, aiohttp.ClientSession() as http:
        assert await sim.health()
        assert await sim.urls() == served
        overrides = await sim.settings_overrides()
        assert overrides["youtube"]["token_url"] == served.youtube_token

        page = await sim.add_account(FB, name="Acme")
        assert (page.name, page.platform) == ("Acme", FB)
        assert [a.external_id for a in await sim.accounts(FB)] == [page.external_id]
        url = f"{served.facebook}/{page.external_id}/feed"
        token = {"Authorization": f"Bearer {page.credentials['access_token']}"}
        async with http.post(url, json={"message": "over the wire"}, headers=token) as response:
            assert response.status == 200
            post_id = (await response.json())["id"]

        await sim.set_faults(FB, FaultConfig(drop_rate=1.0))
        assert (await sim.faults(FB)).drop_rate == 1.0
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with http.post(url, json={"message": "dropped"}, headers=token):
                pass
        await sim.set_faults(FB, FaultConfig())

        summary = await sim.audit.summary()
        assert (summary["posts"], summary["undelivered"], summary["limit_violations"]) == (2, 1, 0)
        assert summary["injected"]["facebook"] == {"drop": 1}
        posts = await sim.audit.posts(FB)
        assert (posts[0].post_id, posts[0].delivered) == (post_id, True)
        assert [p.text for p in posts] == ["over the wire", "dropped"]
        assert await sim.audit.duplicates() == 0
        requests = await sim.audit.requests(FB, page.external_id)
        assert [r.status for r in requests] == [200, 0]

        await sim.revoke(FB, page.external_id)
        async with http.post(url, json={"message": "no"}, headers=token) as response:
            assert (await response.json())["error"]["error_subcode"] == 460
        fresh = await sim.reauthorize(FB, page.external_id)
        async with http.post(
            url,
            json={"message": "yes"},
            headers={"Authorization": f"Bearer {fresh['access_token']}"},
        ) as r:
            assert r.status == 200
        with pytest.raises(UnknownAccount):
            await sim.revoke(FB, "000")

        media = await sim.media_url("video", "clip.mp4", size=1234)
        async with http.get(media) as response:
            assert await response.read() == media_bytes("video/clip.mp4", 1234)

        before = await sim.advance_clock(0)
        assert await sim.advance_clock(86_400) >= before + 86_400
        await sim.audit.reset()
        assert (await sim.audit.summary())["posts"] == 0
        assert await sim.audit.violations() == []


async def test_a_platform_is_taken_down_and_refusals_are_read_over_the_admin_api(
    served: SimulatorUrls,
) -> None:
    async with SimulatorClient(served.admin) as sim, aiohttp.ClientSession() as http:
        page = await sim.add_account(FB)
        url = f"{served.facebook}/{page.external_id}/feed"
        token = {"Authorization": f"Bearer {page.credentials['access_token']}"}
        await sim.set_faults(FB, FaultConfig(throttle_rate=1.0, graph_throttle_codes=(32,)))
        async with http.post(url, json={"message": "throttled"}, headers=token) as response:
            assert response.status == 400
        await sim.set_faults(FB, FaultConfig())
        (refusal,) = await sim.audit.refusals(FB, page.external_id)
        assert refusal.rule == "injected"
        assert (await sim.audit.summary())["refused"] == 1

        await sim.take_down(FB, for_s=60)
        assert await sim.is_down(FB)
        async with aiohttp.ClientSession() as fresh:
            with pytest.raises(aiohttp.ClientConnectorError):
                await fresh.post(url, json={"message": "refused"}, headers=token)
        await sim.bring_up(FB)  # before its time
        assert not await sim.is_down(FB)
        async with http.post(url, json={"message": "back"}, headers=token) as response:
            assert response.status == 200
        assert (await sim.audit.summary())["down_s"]["facebook"] > 0
        async with http.post(
            f"{served.admin}/_sim/platforms/facebook/down", json={"seconds": -1}
        ) as response:
            assert response.status == 400


def test_entry_point_rejects_bad_ports() -> None:
    from herald.simulator.__main__ import main

    with pytest.raises(SystemExit):
        main(["--port", "nowhere=1"])


async def test_admin_input_errors(served: SimulatorUrls) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{served.admin}/_sim/accounts", json={"platform": "myspace"}) as r:
            assert r.status == 400
            assert "error" in json.loads(await r.text())
        async with http.put(
            f"{served.admin}/_sim/faults", json={"platform": "facebook", "faults": {"drop_rate": 2}}
        ) as r:
            assert r.status == 400
