"""Media downloads: streamed a piece at a time, capped, picked up again after a drop.

Each test serves its media from a local aiohttp server of its own (allowed by the egress
policy, as an operator allows a network) and reads it through the connectors' HTTP client.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from herald.config import LinkedInSettings
from herald.egress.policy import EgressPolicy
from herald.errors import ContentRejected, TransientPlatformError
from herald.platforms.http import HttpClient
from herald.platforms.media import MAX_REOPENS, MediaDownload, size_text
from herald.simulator.media import media_bytes, media_etag, serve_media
from tests.unit.test_platform_fakes import download

MiB = 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MediaHost:
    """A local server answering GET /<path> with ``handler``; it records each request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[web.Request] = []
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        return await self.handler(request)


@pytest.fixture
async def host() -> AsyncIterator[Callable[[Handler], Awaitable[MediaHost]]]:
    servers: list[TestServer] = []

    async def start(handler: Handler) -> MediaHost:
        media = MediaHost(handler)
        app = web.Application()
        app.router.add_get("/{path:.+}", media._handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        media.url = str(server.make_url("")).rstrip("/")
        return media

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    settings = LinkedInSettings(timeout_s=5.0, connect_timeout_s=1.0)
    client = HttpClient("linkedin", settings, egress=EgressPolicy.allowing("127.0.0.1/32"))
    yield client
    await client.aclose()


def simulated(**query: str) -> Handler:
    """The simulator's media file (deterministic bytes, ranges), with ``query`` added."""

    async def handle(request: web.Request) -> web.StreamResponse:
        url = request.rel_url.update_query(query)
        return await serve_media(request.clone(rel_url=url))

    return handle


def dropping_once(**query: str) -> Handler:
    """The simulator's media file, whose first answer is cut with ``query`` (``cut=K``)."""
    answers = 0

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal answers
        answers += 1
        return await simulated(**query)(request) if answers == 1 else await serve_media(request)

    return handle


async def test_size_text() -> None:
    assert size_text(256 * 10**9) == "256 GB"
    assert size_text(8 * MiB) == "8 MiB"
    assert size_text(1000) == "1,000 bytes"


async def test_a_file_under_the_cap_comes_whole_and_exact(host, http) -> None:
    media = await host(simulated())
    got = await download(http, f"{media.url}/video/a.mp4?bytes=3000000", max_bytes=4 * MiB)
    assert got == media_bytes("video/a.mp4", 3_000_000)
    assert media.seen[0].headers["Accept-Encoding"] == "identity"


async def test_a_declared_length_over_the_cap_is_refused_before_the_body(host, http) -> None:
    sent = asyncio.Event()

    async def headers_only(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 10 * 10**9
        await response.prepare(request)
        sent.set()
        await asyncio.Event().wait()  # never a byte of the body: reading it would hang
        return response

    media = await host(headers_only)
    async with asyncio.timeout(3):
        with pytest.raises(ContentRejected) as refused:
            await download(http, f"{media.url}/big.mp4", max_bytes=MiB)
    assert sent.is_set()
    assert refused.value.message == "linkedin: media too large: over 1 MiB (10 GB declared)"


async def test_a_body_without_length_is_cut_off_at_the_cap(host, http) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        while True:  # a source that never ends: only the cap stops the download
            await response.write(b"x" * 65536)

    media = await host(endless)
    handed: list[int] = []

    async def read_all() -> None:
        async with http.open_media(f"{media.url}/endless.mp4", max_bytes=MiB) as stream:
            assert stream.size is None
            async for piece in stream.pieces():
                handed.append(len(piece))

    with pytest.raises(ContentRejected) as refused:
        async with asyncio.timeout(10):  # a few milliseconds; without the cap, never
            await read_all()
    assert refused.value.message == "linkedin: media too large: over 1 MiB"
    assert 0 < sum(handed) <= MiB


async def test_a_compressed_body_is_counted_as_it_comes_out(host, http) -> None:
    """A declared length under the cap says nothing of a compressed body's real size."""
    bomb = gzip.compress(b"\0" * (4 * MiB))

    async def compressed(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    media = await host(compressed)
    assert len(bomb) < MiB
    with pytest.raises(ContentRejected) as refused:
        await download(http, f"{media.url}/bomb.jpg", max_bytes=MiB)
    assert refused.value.message == "linkedin: media too large: over 1 MiB"


async def test_exactly_the_cap_is_allowed(host, http) -> None:
    media = await host(simulated(length="0"))
    got = await download(http, f"{media.url}/image/c.jpg?bytes={MiB}", max_bytes=MiB)
    assert len(got) == MiB


async def test_a_drop_is_picked_up_with_a_range_request(host, http) -> None:
    media = await host(dropping_once(cut="1000000"))
    got = await download(http, f"{media.url}/video/r.mp4?bytes=3000000", max_bytes=4 * MiB)
    assert got == media_bytes("video/r.mp4", 3_000_000)
    first, again = media.seen
    assert "Range" not in first.headers
    assert again.headers["Range"] == "bytes=1000000-"
    assert again.headers["If-Range"] == media_etag("video/r.mp4", 3_000_000)


async def test_without_ranges_a_drop_starts_over_and_skips(host, http) -> None:
    media = await host(dropping_once(cut="1000000", ranges="0"))
    url = f"{media.url}/video/s.mp4?bytes=3000000&ranges=0"
    assert await download(http, url, max_bytes=4 * MiB) == media_bytes("video/s.mp4", 3_000_000)
    assert len(media.seen) == 2


async def test_a_source_that_keeps_dropping_fails_after_a_bounded_number_of_tries(
    host, http
) -> None:
    media = await host(simulated(cut="1000000", ranges="0"))
    with pytest.raises(TransientPlatformError) as failed:
        await download(http, f"{media.url}/video/t.mp4?bytes=3000000", max_bytes=4 * MiB)
    assert not isinstance(failed.value, ContentRejected)
    assert failed.value.message.startswith("linkedin: media download failed")
    assert len(media.seen) == 1 + MAX_REOPENS


async def test_a_file_that_changed_meanwhile_is_not_spliced(host, http) -> None:
    answers = 0

    async def changing(request: web.Request) -> web.StreamResponse:
        nonlocal answers
        answers += 1
        body = bytes([answers]) * 300_000
        response = web.StreamResponse(headers={"ETag": f'"v{answers}"'})
        response.content_length = len(body)
        await response.prepare(request)
        if answers == 1:
            await response.write(body[:100_000])
            assert request.transport is not None
            request.transport.close()
            return response
        await response.write(body)  # the whole new file, ignoring the Range
        return response

    media = await host(changing)
    with pytest.raises(TransientPlatformError) as failed:
        await download(http, f"{media.url}/x.jpg", max_bytes=MiB)
    assert failed.value.message == "linkedin: the media file changed while it was read"
    assert media.seen[1].headers["If-Range"] == '"v1"'


async def test_seek_goes_back_with_a_range_request(host, http) -> None:
    media = await host(simulated())
    expected = media_bytes("video/k.mp4", 600_000)
    async with http.open_media(f"{media.url}/video/k.mp4?bytes=600000", max_bytes=MiB) as stream:
        assert isinstance(stream, MediaDownload)
        assert stream.size == 600_000
        await stream.seek(400_000)  # forward: skipped
        assert stream.position == 400_000
        await stream.seek(100_000)  # back: asked again
        rest = b"".join([piece async for piece in stream.pieces()])
    assert rest == expected[100_000:]
    assert media.seen[-1].headers["Range"] == "bytes=100000-"


@pytest.mark.parametrize(("status", "final"), [(404, True), (403, True), (503, False)])
async def test_statuses(host, http, status: int, final: bool) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status)

    media = await host(answer)
    with pytest.raises(TransientPlatformError if not final else ContentRejected) as failed:
        await download(http, f"{media.url}/a.jpg", max_bytes=MiB)
    assert failed.value.message == f"linkedin: media download answered HTTP {status}"
