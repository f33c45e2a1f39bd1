"""The HTTP boundary: error translation, Retry-After, the session's pool and lifetime."""

from __future__ import annotations

import aiohttp
import pytest

from herald.config import FacebookSettings
from herald.egress.policy import EgressPolicy
from herald.errors import AuthExpired, ContentRejected, OutcomeUnknown, TransientPlatformError
from herald.platforms.http import HttpClient, bearer, header, json_body, retry_after_s
from tests.unit.test_platform_fakes import (
    NOW,
    FakeApi,
    closed_port_url,
    download,
    drop,
    hang,
    reply,
)


def client(url: str, *, timeout_s: float = 30.0, concurrency: int = 8) -> HttpClient:
    """A client of the fake API on loopback, where its media are too (allowed, as an operator
    allows a network)."""
    settings = FacebookSettings(base_url=url, timeout_s=timeout_s, concurrency=concurrency)
    return HttpClient("facebook", settings, egress=LOOPBACK)


LOOPBACK = EgressPolicy.allowing("127.0.0.1/32")


def session_of(http: HttpClient) -> aiohttp.ClientSession | None:
    return http._session


@pytest.mark.parametrize(
    ("status", "value", "expected"),
    [
        (429, "120", 120.0),
        (503, "7", 7.0),
        (429, "Sat, 28 Nov 2026 17:02:00 GMT", 120.0),
        (429, "Sat, 28 Nov 2026 16:00:00 GMT", 0.0),  # a date in the past: go now
        (429, "soon", None),
        (500, "120", None),  # only 429 and 503 carry a meaningful Retry-After
        (400, "120", None),
    ],
)
def test_retry_after(status: int, value: str, expected: float | None) -> None:
    assert retry_after_s(status, {"Retry-After": value}, NOW) == expected


def test_retry_after_absent_and_case_insensitive() -> None:
    assert retry_after_s(429, {}, NOW) is None
    assert retry_after_s(429, {"retry-after": "3"}, NOW) == 3.0
    assert header({"X-Restli-Id": "urn"}, "x-restli-id") == "urn"


def test_json_body_is_tolerant() -> None:
    assert json_body(b"") is None
    assert json_body(b"<html>") is None
    assert json_body(b'{"a": 1}') == {"a": 1}
    assert json_body({"a": 1}) == {"a": 1}


def test_bearer_header_and_missing_token() -> None:
    assert bearer({"access_token": "t"}, "facebook") == {"Authorization": "Bearer t"}
    with pytest.raises(AuthExpired):
        bearer({}, "facebook")


@pytest.mark.parametrize("creates_post", [True, False])
async def test_connect_refused_is_transient(creates_post: bool) -> None:
    url = closed_port_url()
    http = client(url)
    try:
        with pytest.raises(TransientPlatformError) as info:
            await http.request("POST", f"{url}/x", creates_post=creates_post)
        assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)
        assert not isinstance(info.value, OutcomeUnknown)
    finally:
        await http.aclose()


@pytest.mark.parametrize(
    ("creates_post", "expected"), [(True, OutcomeUnknown), (False, TransientPlatformError)]
)
async def test_dropped_connection_after_sending(creates_post: bool, expected: type) -> None:
    async with FakeApi() as api:
        api.on("POST", "/x", drop())
        http = client(api.url)
        try:
            with pytest.raises(expected) as info:
                await http.request("POST", f"{api.url}/x", creates_post=creates_post, json={})
            assert isinstance(info.value.__cause__, aiohttp.ServerDisconnectedError)
        finally:
            await http.aclose()
        assert len(api.calls("POST", "/x")) == 1  # sent exactly once, never retried here


async def test_only_a_safe_get_is_repeated_after_a_drop() -> None:
    async with FakeApi() as api:
        api.on("GET", "/x", drop(), reply(200, {"ok": True}))
        api.on("PUT", "/x", drop(), reply(200, {}))
        http = client(api.url)
        try:
            assert (await http.request("GET", f"{api.url}/x")).json() == {"ok": True}
            with pytest.raises(OutcomeUnknown):  # aiohttp's own repeat of a PUT is off
                await http.request("PUT", f"{api.url}/x", creates_post=True, data=b"v")
        finally:
            await http.aclose()
        assert len(api.calls("GET", "/x")) == 2
        assert len(api.calls("PUT", "/x")) == 1
        api.on("GET", "/x", drop())
        http = client(api.url)
        try:
            with pytest.raises(TransientPlatformError):
                await http.request("GET", f"{api.url}/x")
        finally:
            await http.aclose()
        assert len(api.calls("GET", "/x")) == 4  # one repeat, no more


@pytest.mark.parametrize(
    ("creates_post", "expected"), [(True, OutcomeUnknown), (False, TransientPlatformError)]
)
async def test_timeout_after_sending(creates_post: bool, expected: type) -> None:
    async with FakeApi() as api:
        api.on("POST", "/x", hang())
        http = client(api.url, timeout_s=0.2)
        try:
            with pytest.raises(expected) as info:
                await http.request("POST", f"{api.url}/x", creates_post=creates_post)
            assert isinstance(info.value.__cause__, TimeoutError)
        finally:
            await http.aclose()


async def test_answer_is_read_whole_and_secrets_stay_out_of_errors() -> None:
    async with FakeApi() as api:
        api.on("GET", "/ok", reply(200, {"id": "1"}, {"X-Test": "yes"}))
        api.on("POST", "/x", drop())
        http = client(api.url)
        try:
            resp = await http.request("GET", f"{api.url}/ok", headers={"Authorization": "Bearer s"})
            assert resp.ok
            assert resp.json() == {"id": "1"}
            assert resp.headers["x-test"] == "yes"
            with pytest.raises(OutcomeUnknown) as info:
                await http.request(
                    "POST",
                    f"{api.url}/x?upload_id=abc",
                    creates_post=True,
                    headers=bearer({"access_token": "SECRET-TOKEN"}, "facebook"),
                )
            assert "SECRET" not in str(info.value)
            assert "upload_id" not in str(info.value)
        finally:
            await http.aclose()
        assert api.calls("GET", "/ok")[0].headers["Authorization"] == "Bearer s"


async def test_session_is_lazy_pooled_by_concurrency_and_reopens_after_close() -> None:
    async with FakeApi() as api:
        api.on("GET", "/ok", reply(200, {}))
        http = client(api.url, concurrency=3)
        assert session_of(http) is None  # nothing opened outside the loop
        await http.request("GET", f"{api.url}/ok")
        session = session_of(http)
        assert session is not None
        assert session.connector is not None
        assert session.connector.limit == 3
        await http.aclose()
        assert session.closed
        await http.request("GET", f"{api.url}/ok")
        await http.aclose()


async def test_media_download_classifies_failures() -> None:
    async with FakeApi() as api:
        api.on("GET", "/gone.mp4", reply(404, b"no"))
        api.on("GET", "/busy.mp4", reply(503, b"busy"))
        api.on("GET", "/ok.mp4", reply(200, b"\x00\x01"))
        http = client(api.url)
        try:
            assert await download(http, f"{api.url}/ok.mp4") == b"\x00\x01"
            with pytest.raises(ContentRejected):
                await download(http, f"{api.url}/gone.mp4")
            with pytest.raises(TransientPlatformError):
                await download(http, f"{api.url}/busy.mp4")
        finally:
            await http.aclose()
        # Media downloads never carry the channel's credentials.
        assert all("Authorization" not in s.headers for s in api.seen)
