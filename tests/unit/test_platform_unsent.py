"""Requests that never reached the platform: which failures prove it, and what one connector
call (a publish or a look-up, often several requests) makes of them."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

from herald.config import FacebookSettings, LinkedInSettings
from herald.domain import Content, Media, MediaKind, Platform
from herald.egress.policy import EgressPolicy
from herald.errors import OutcomeUnknown, RequestNotSent, TransientPlatformError
from herald.platforms.http import HttpClient, HttpResponse, exchange
from herald.platforms.linkedin import LinkedInConnector
from tests.unit.test_platform_fakes import (
    FakeApi,
    closed_port_url,
    download,
    drop,
    make_request,
    reply,
)

LOOPBACK = EgressPolicy.allowing("127.0.0.1/32")  # the fakes' media are on loopback
KEY = ConnectionKey("graph.example", 443, True, True, None, None, None)

#: What aiohttp raises while it gets a connection, before anything is written.
NOT_SENT: list[Callable[[], BaseException]] = [
    lambda: aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")),
    lambda: aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "Name or service not known")),
    lambda: aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError(1, "handshake failure")),
    lambda: aiohttp.ClientConnectorCertificateError(
        KEY, ssl.SSLCertVerificationError(1, "certificate verify failed")
    ),
    lambda: aiohttp.ClientProxyConnectionError(KEY, OSError(111, "proxy refused")),
    lambda: aiohttp.ConnectionTimeoutError("Connection timeout to host"),
    lambda: aiohttp.ServerFingerprintMismatch(b"expected", b"got", "graph.example", 443),
]
#: What may come after the request was written: the platform may have read it.
SENT: list[Callable[[], BaseException]] = [
    aiohttp.ServerDisconnectedError,
    lambda: aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
    lambda: aiohttp.ClientOSError(104, "Connection reset by peer"),
    lambda: aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
    lambda: aiohttp.ClientPayloadError("Response payload is not completed"),
    TimeoutError,
]


class Failing(HttpClient):
    """A client whose every send fails with what ``make`` raises."""

    def __init__(self, make: Callable[[], BaseException]) -> None:
        super().__init__("facebook", FacebookSettings(base_url="http://graph.example"))
        self.make = make

    async def _send(self, method: str, url: str | URL, kwargs: dict[str, Any]) -> HttpResponse:
        raise self.make()


@pytest.mark.parametrize("make", NOT_SENT)
@pytest.mark.parametrize("creates_post", [True, False])
async def test_failures_before_writing_are_not_sent(
    make: Callable[[], BaseException], creates_post: bool
) -> None:
    with pytest.raises(RequestNotSent) as info:
        await Failing(make).request("POST", "http://graph.example/x", creates_post=creates_post)
    assert not info.value.partial
    assert type(info.value.__cause__) is type(make())


@pytest.mark.parametrize("make", SENT)
async def test_failures_after_writing_are_never_not_sent(make: Callable[[], BaseException]) -> None:
    with pytest.raises(OutcomeUnknown):
        await Failing(make).request("POST", "http://graph.example/x", creates_post=True)
    with pytest.raises(TransientPlatformError) as info:
        await Failing(make).request("POST", "http://graph.example/x")
    assert not isinstance(info.value, RequestNotSent)


async def test_a_refused_connection_is_not_sent() -> None:
    url = closed_port_url()
    http = HttpClient("facebook", FacebookSettings(base_url=url))
    try:
        with pytest.raises(RequestNotSent) as info:
            await http.request("POST", f"{url}/x", creates_post=True)
        assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
        assert not info.value.partial
    finally:
        await http.aclose()


async def test_a_drop_after_the_request_left_is_not_not_sent() -> None:
    async with FakeApi() as api:
        api.on("POST", "/x", drop())
        http = HttpClient("facebook", FacebookSettings(base_url=api.url))
        try:
            with pytest.raises(OutcomeUnknown):
                await http.request("POST", f"{api.url}/x", creates_post=True, json={})
        finally:
            await http.aclose()


async def test_a_call_is_unsent_only_if_none_of_its_requests_left() -> None:
    refused = closed_port_url()
    async with FakeApi() as api:
        api.on("POST", "/upload", reply(200, {}))
        http = HttpClient("facebook", FacebookSettings(base_url=api.url))

        @exchange
        async def call(first: str, then: str) -> None:
            await http.request("POST", first)
            await http.request("POST", then)

        try:
            with pytest.raises(RequestNotSent) as first:
                await call(f"{refused}/upload", f"{api.url}/upload")
            assert not first.value.partial
            with pytest.raises(RequestNotSent) as second:
                await call(f"{api.url}/upload", f"{refused}/post")
            assert second.value.partial
            # Each call starts afresh, and a request outside any call is judged alone.
            with pytest.raises(RequestNotSent) as again:
                await call(f"{refused}/upload", f"{api.url}/upload")
            assert not again.value.partial
            with pytest.raises(RequestNotSent) as alone:
                await http.request("POST", f"{refused}/post")
            assert not alone.value.partial
        finally:
            await http.aclose()


async def test_a_media_host_that_refuses_is_a_plain_transient_failure() -> None:
    settings = LinkedInSettings(base_url="http://127.0.0.1:9")
    http = HttpClient("linkedin", settings, egress=LOOPBACK)
    try:
        with pytest.raises(TransientPlatformError) as info:
            await download(http, f"{closed_port_url()}/a.jpg")
        assert not isinstance(info.value, RequestNotSent)  # the media host is not the platform
    finally:
        await http.aclose()


@pytest.fixture
async def linkedin_api():
    async with FakeApi() as api:
        yield api


async def test_linkedin_refused_from_the_start_is_not_sent() -> None:
    li = LinkedInConnector(LinkedInSettings(base_url=closed_port_url()), throttle_pause_s=30.0)
    try:
        request = make_request(Platform.LINKEDIN, Content(text="hello"), external_id="urn:li:x")
        with pytest.raises(RequestNotSent) as info:
            await li.publish(request)
        assert not info.value.partial
    finally:
        await li.aclose()


async def test_linkedin_upload_refused_after_the_platform_was_reached_is_partial(
    linkedin_api: FakeApi,
) -> None:
    # The image download is not a request to LinkedIn; initializeUpload is, and it went out:
    # the refused upload leaves a call the platform has seen part of.
    api, refused = linkedin_api, closed_port_url()
    api.on("GET", "/img.jpg", reply(200, b"\xff\xd8"))
    upload = {"value": {"uploadUrl": f"{refused}/upload", "image": "urn:li:image:1"}}
    api.on("POST", "/rest/images", reply(200, upload))
    settings = LinkedInSettings(base_url=api.url)
    li = LinkedInConnector(settings, throttle_pause_s=30.0, egress=LOOPBACK)
    try:
        image = Media(f"{api.url}/img.jpg", MediaKind.IMAGE)
        content = Content(text="hello", media=(image,))
        request = make_request(Platform.LINKEDIN, content, external_id="urn:li:x")
        with pytest.raises(RequestNotSent) as info:
            await li.publish(request)
        assert info.value.partial
    finally:
        await li.aclose()
