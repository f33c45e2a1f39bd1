"""The simulator's YouTube keeps what arrived of an upload PUT cut mid-body, in 256 KiB units.

The cuts here are real: a client that sends part of a declared body and closes its socket,
or the ``cut`` fault that closes the connection from the server's side.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from herald.domain import Platform
from herald.simulator import FaultConfig, Simulator, SimulatorConfig, media_bytes, media_sha256
from herald.testing import eventually
from tests.integration.test_simulator_youtube import NO_LATENCY, put, start_session

YT = Platform.YOUTUBE
UNIT = 256 * 1024
SIZE = 4 * UNIT + 12_345  # under 1 MiB past the first unit: aiohttp sends it as one body
CHUNK = 3 * UNIT  # the first chunk: bytes 0 to CHUNK - 1


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(latency=NO_LATENCY, seed=3)) as simulator:
        yield simulator


async def send_part(uri: str, declared: bytes, sent: int, content_range: str) -> None:
    """A PUT that declares all of ``declared`` but sends its first ``sent`` bytes, then closes
    its connection; whatever the server did meanwhile (it may cut it first) is ignored."""
    url = URL(uri)
    assert url.host is not None
    assert url.port is not None
    _, writer = await asyncio.open_connection(url.host, url.port)
    head = (
        f"PUT {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Content-Type: video/mp4\r\nContent-Length: {len(declared)}\r\n"
        f"Content-Range: {content_range}\r\n\r\n"
    )
    with contextlib.suppress(ConnectionError):  # the server may close first: a cut fault
        writer.write(head.encode() + declared[:sent])
        await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def ended_puts(sim: Simulator, count: int) -> None:
    """Wait until the simulator has ended ``count`` PUTs: a cut one is logged once its
    handler let go of it, after it kept what it kept."""
    await eventually(lambda: sum(r.method == "PUT" for r in sim.audit.requests(YT)) >= count)


async def status(http: aiohttp.ClientSession, uri: str) -> tuple[int, str | None]:
    code, _, headers = await put(http, uri, b"", f"bytes */{SIZE}")
    return code, headers.get("Range")


async def new_upload(sim: Simulator, http: aiohttp.ClientSession) -> tuple[str, bytes]:
    channel = sim.add_account(YT)
    code, uri = await start_session(sim, http, channel, size=SIZE)
    assert code == 200
    return uri, media_bytes("video/cut.mp4", SIZE)


def recorded(sim: Simulator) -> list[tuple[Any, ...]]:
    return [(p.media_bytes, p.media_sha256) for p in sim.audit.posts(YT)]


async def test_a_put_cut_by_its_client_keeps_the_whole_units_that_arrived(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    uri, data = await new_upload(sim, http)
    await send_part(uri, data[:CHUNK], 2 * UNIT + 1000, f"bytes 0-{CHUNK - 1}/{SIZE}")
    await ended_puts(sim, 1)
    assert await status(http, uri) == (308, f"bytes=0-{2 * UNIT - 1}")
    # A PUT from anywhere else keeps nothing and is told where the session stands.
    code, _, headers = await put(http, uri, data[:CHUNK], f"bytes 0-{CHUNK - 1}/{SIZE}")
    assert (code, headers["Range"]) == (308, f"bytes=0-{2 * UNIT - 1}")
    # Resumed from the kept length, the rest completes the file: its size and digest whole.
    code, video, _ = await put(http, uri, data[2 * UNIT :], f"bytes {2 * UNIT}-{SIZE - 1}/{SIZE}")
    assert code == 201
    assert recorded(sim) == [(SIZE, media_sha256("video/cut.mp4", SIZE))]
    assert sim.audit.posts(YT)[0].post_id == video["id"]
    assert sim.audit.injected(YT) == {}


async def test_a_cut_inside_the_first_unit_keeps_nothing(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    uri, data = await new_upload(sim, http)
    await send_part(uri, data[:CHUNK], UNIT - 1, f"bytes 0-{CHUNK - 1}/{SIZE}")
    await ended_puts(sim, 1)
    assert await status(http, uri) == (308, None)


async def test_a_cut_chunk_that_does_not_continue_the_session_keeps_nothing(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    uri, data = await new_upload(sim, http)
    code, _, _ = await put(http, uri, data[:UNIT], f"bytes 0-{UNIT - 1}/{SIZE}")
    assert code == 308
    # Starts at 0 again, though the session holds the first unit: nothing of it is kept.
    await send_part(uri, data[:CHUNK], 2 * UNIT + 1000, f"bytes 0-{CHUNK - 1}/{SIZE}")
    await ended_puts(sim, 2)
    assert await status(http, uri) == (308, f"bytes=0-{UNIT - 1}")


async def test_a_cut_fault_keeps_the_units_before_it(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    uri, data = await new_upload(sim, http)
    sim.set_faults(YT, FaultConfig(cut_rate=1.0))
    await send_part(uri, data[:CHUNK], CHUNK, f"bytes 0-{CHUNK - 1}/{SIZE}")
    await ended_puts(sim, 1)
    sim.set_faults(YT, FaultConfig())
    assert sim.audit.injected(YT) == {"cut": 1}
    code, kept_range = await status(http, uri)
    assert code == 308
    assert kept_range is not None, "seed 3 cuts past the first unit"
    kept = int(kept_range.rsplit("-", 1)[1]) + 1
    assert kept % UNIT == 0
    assert 0 < kept < CHUNK
    [cut] = [r for r in sim.audit.requests(YT) if r.method == "PUT"][:1]
    assert (cut.status, cut.content_range) == (0, f"bytes 0-{CHUNK - 1}/{SIZE}")
    code, _, _ = await put(http, uri, data[kept:], f"bytes {kept}-{SIZE - 1}/{SIZE}")
    assert code == 201
    assert recorded(sim) == [(SIZE, media_sha256("video/cut.mp4", SIZE))]
