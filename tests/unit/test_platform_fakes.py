"""Shared helpers of the platform unit tests: a scriptable local HTTP server, no tests.

:class:`FakeApi` answers every request from a per-route queue of scripted replies (the last
one repeats) and records what it received, so a test asserts on the exact wire traffic.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy

from herald.domain import Channel, Content, Platform
from herald.platforms.http import HttpClient
from herald.types import PublishRequest

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]

NOW = datetime(2026, 11, 28, 17, 0, tzinfo=UTC)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    raw_query: str  # as it came over the wire, percent-encoding kept
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def reply(status: int = 200, body: Any = None, headers: Mapping[str, str] | None = None) -> Reply:
    async def respond(request: web.Request) -> web.StreamResponse:
        if body is None:
            return web.Response(status=status, headers=headers)
        if isinstance(body, bytes):
            return web.Response(status=status, body=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return respond


def drop() -> Reply:
    """Read the request, then close the connection without a word (commit-then-drop)."""

    async def respond(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=200)

    return respond


def hang() -> Reply:
    """Never answer: the client's own timeout ends the request."""

    async def respond(request: web.Request) -> web.StreamResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return respond


@dataclass
class FakeApi:
    seen: list[Seen] = field(default_factory=list)
    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    url: str = ""
    _server: TestServer | None = None

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.routes[(method, path)] = list(replies)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [
            s
            for s in self.seen
            if (method is None or s.method == method) and (path is None or s.path == path)
        ]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                request.raw_path.partition("?")[2],
                request.headers,
                body,
            )
        )
        queue = self.routes.get((request.method, request.path))
        if not queue:
            return web.json_response({"unscripted": request.path}, status=418)
        handler = queue.pop(0) if len(queue) > 1 else queue[0]
        return await handler(request)

    async def __aenter__(self) -> FakeApi:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app)
        await self._server.start_server()
        self.url = str(self._server.make_url("")).rstrip("/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        await self._server.close()


async def download(http: HttpClient, url: str, *, max_bytes: int = 1 << 30) -> bytes:
    """A whole media file through ``http``'s media downloads (small files, in tests only)."""
    async with http.open_media(url, max_bytes=max_bytes) as media:
        return b"".join([piece async for piece in media.pieces()])


def closed_port_url() -> str:
    """An http URL on which nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def make_request(
    platform: Platform,
    content: Content,
    *,
    external_id: str = "123",
    credentials: Mapping[str, str] | None = None,
    since: datetime = NOW,
) -> PublishRequest:
    channel = Channel(
        id="ch_1",
        platform=platform,
        external_id=external_id,
        name="test",
        timezone="UTC",
        credentials_ref="ref",
    )
    return PublishRequest(
        delivery_id="dlv_1",
        channel=channel,
        credentials=credentials or {"access_token": "SECRET-TOKEN"},
        content=content,
        attempt=1,
        since=since,
    )
