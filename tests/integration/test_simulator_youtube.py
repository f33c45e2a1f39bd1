"""The simulator's YouTube (resumable upload, Data API, Google token endpoint)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from yarl import URL

from herald.domain import Platform
from herald.simulator import (
    NO_LISTING_LAG,
    FaultConfig,
    LatencyModel,
    SimAccount,
    SimClock,
    Simulator,
    SimulatorConfig,
    YouTubeSim,
    media_bytes,
    media_sha256,
)

YT = Platform.YOUTUBE
NO_LATENCY = LatencyModel(median_s=0, p99_s=0)
VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")
SIZE = 300_000


def config(**youtube: Any) -> SimulatorConfig:
    return SimulatorConfig(
        latency=NO_LATENCY, listing_lag=NO_LISTING_LAG, youtube=YouTubeSim(**youtube)
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config()) as simulator:
        yield simulator


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def start_session(
    sim: Simulator,
    http: aiohttp.ClientSession,
    channel: SimAccount,
    title: str = "Title",
    token: str | None = None,
    *,
    size: int | None = SIZE,
) -> tuple[int, Any]:
    async with http.post(
        f"{sim.urls.youtube_upload}/upload/youtube/v3/videos",
        params={"uploadType": "resumable", "part": "snippet,status"},
        json={
            "snippet": {"title": title, "description": f"about {title}", "categoryId": "22"},
            "status": {"privacyStatus": "public", "selfDeclaredMadeForKids": False},
        },
        headers={
            **bearer(token or channel.credentials["access_token"]),
            "X-Upload-Content-Type": "video/*",
            **({} if size is None else {"X-Upload-Content-Length": str(size)}),
        },
    ) as response:
        if response.status == 200:
            return 200, response.headers["Location"]
        return response.status, await response.json()


async def put(
    http: aiohttp.ClientSession,
    session_uri: str,
    data: bytes,
    content_range: str | None = None,
    client_timeout: aiohttp.ClientTimeout | None = None,
) -> tuple[int, Any, Any]:
    headers = {"Content-Type": "video/mp4"}
    if content_range is not None:
        headers["Content-Range"] = content_range
    async with http.put(
        session_uri, data=data, headers=headers, timeout=client_timeout
    ) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, response.headers


async def status_query(http: aiohttp.ClientSession, session_uri: str) -> tuple[int, Any, Any]:
    return await put(http, session_uri, b"", f"bytes */{SIZE}")


async def raw_put(uri: str, data: bytes) -> bytes:
    """Send one PUT on a new connection; return whatever came back before the server closed."""
    url = URL(uri)
    assert url.host is not None
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = (
        f"PUT {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Content-Type: video/mp4\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    writer.write(head.encode() + data)
    await writer.drain()
    received = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    await writer.wait_closed()
    return received


def reason(body: dict[str, Any]) -> str:
    return str(body["error"]["errors"][0]["reason"])


async def test_resumable_upload_and_lookup(sim: Simulator, http: aiohttp.ClientSession) -> None:
    channel = sim.add_account(YT)
    assert re.fullmatch(r"UC[A-Za-z0-9_-]{22}", channel.external_id)
    status, uri = await start_session(sim, http, channel, "My video")
    assert status == 200
    async with http.get(sim.media_url("video", "clip1.mp4", size=SIZE)) as response:
        video_bytes = await response.read()
    assert video_bytes == media_bytes("video/clip1.mp4", SIZE)

    status, video, _ = await put(http, uri, video_bytes)
    assert status == 201
    assert video["kind"] == "youtube#video"
    assert VIDEO_ID.match(video["id"])
    assert video["status"]["uploadStatus"] == "uploaded"
    assert video["snippet"]["title"] == "My video"

    token = bearer(channel.credentials["access_token"])
    async with http.get(
        f"{sim.urls.youtube}/youtube/v3/channels",
        params={"part": "contentDetails", "mine": "true"},
        headers=token,
    ) as response:
        [item] = (await response.json())["items"]
    assert item["id"] == channel.external_id
    uploads = item["contentDetails"]["relatedPlaylists"]["uploads"]
    assert uploads.startswith("UU")
    async with http.get(
        f"{sim.urls.youtube}/youtube/v3/playlistItems",
        params={"part": "snippet", "playlistId": uploads, "maxResults": "25"},
        headers=token,
    ) as response:
        [entry] = (await response.json())["items"]
    snippet = entry["snippet"]
    assert snippet["resourceId"] == {"kind": "youtube#video", "videoId": video["id"]}
    assert (snippet["title"], snippet["description"]) == ("My video", "about My video")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", snippet["publishedAt"])
    [record] = sim.audit.posts(YT)
    assert (record.post_id, record.title, record.text) == (
        video["id"],
        "My video",
        "about My video",
    )


async def test_chunked_upload_and_status_query(sim: Simulator, http: aiohttp.ClientSession) -> None:
    channel = sim.add_account(YT)
    _, uri = await start_session(sim, http, channel)
    data = media_bytes("video/c.mp4", SIZE)
    status, _, headers = await status_query(http, uri)
    assert (status, headers.get("Range")) == (308, None)  # nothing received yet
    half = 262_144
    status, _, headers = await put(http, uri, data[:half], f"bytes 0-{half - 1}/{SIZE}")
    assert (status, headers["Range"]) == (308, f"bytes=0-{half - 1}")
    status, _, headers = await status_query(http, uri)
    assert (status, headers["Range"]) == (308, f"bytes=0-{half - 1}")
    status, video, _ = await put(http, uri, data[half:], f"bytes {half}-{SIZE - 1}/{SIZE}")
    assert status == 201
    status, again, _ = await status_query(http, uri)
    assert (status, again["id"]) == (200, video["id"])
    status, _, _ = await status_query(http, uri.replace("upload_id=", "upload_id=gone"))
    assert status == 404
    [record] = sim.audit.posts(YT)
    assert (record.media_bytes, record.media_sha256) == (SIZE, media_sha256("video/c.mp4", SIZE))


async def test_a_length_unknown_until_the_last_chunk(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    channel = sim.add_account(YT)
    _, uri = await start_session(sim, http, channel, size=None)
    data = media_bytes("video/u.mp4", SIZE)
    unit = 262_144
    status, _, headers = await put(http, uri, data[:unit], f"bytes 0-{unit - 1}/*")
    assert (status, headers["Range"]) == (308, f"bytes=0-{unit - 1}")
    status, _, headers = await put(http, uri, b"", "bytes */*")
    assert (status, headers["Range"]) == (308, f"bytes=0-{unit - 1}")
    status, video, _ = await put(http, uri, data[unit:], f"bytes {unit}-{SIZE - 1}/{SIZE}")
    assert status == 201
    [record] = sim.audit.posts(YT)
    assert (record.post_id, record.media_bytes) == (video["id"], SIZE)
    assert record.media_sha256 == media_sha256("video/u.mp4", SIZE)


async def test_a_chunk_before_the_last_keeps_the_256_kib_unit(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    channel = sim.add_account(YT)
    _, uri = await start_session(sim, http, channel)
    data = media_bytes("video/w.mp4", SIZE)
    status, body, _ = await put(http, uri, data[:100_000], f"bytes 0-99999/{SIZE}")
    assert (status, reason(body)) == (400, "badRequest")
    status, _, headers = await status_query(http, uri)
    assert (status, headers.get("Range")) == (308, None)  # nothing of it was kept


async def test_every_chunk_draws_faults(sim: Simulator, http: aiohttp.ClientSession) -> None:
    channel = sim.add_account(YT)
    _, uri = await start_session(sim, http, channel)
    data = media_bytes("video/f.mp4", SIZE)
    unit = 262_144
    sim.set_faults(YT, FaultConfig(error_rate=1.0))
    status, body, _ = await put(http, uri, data[:unit], f"bytes 0-{unit - 1}/{SIZE}")
    assert (status, reason(body)) == (503, "backendError")
    sim.set_faults(YT, FaultConfig())
    status, _, headers = await status_query(http, uri)
    assert (status, headers.get("Range")) == (308, None)  # refused: not kept
    assert sim.audit.injected(YT) == {"error": 1}
    assert sim.audit.posts() == []


async def test_status_query_after_dropped_upload(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    channel = sim.add_account(YT)
    data = media_bytes("video/d.mp4", SIZE)
    sim.set_faults(YT, FaultConfig(drop_rate=1.0))
    _, uri = await start_session(sim, http, channel)
    # Raw HTTP: aiohttp's client repeats an idempotent PUT once by itself after a disconnect,
    # and that repeat would already get the video back, hiding the drop.
    assert await raw_put(uri, data) == b""
    [record] = sim.audit.posts(YT)
    assert record.delivered is False
    # The session knows the upload completed: the video comes back, nothing is sent twice.
    sim.set_faults(YT, FaultConfig())
    status, video, _ = await status_query(http, uri)
    assert (status, video["id"]) == (200, record.post_id)
    assert sim.audit.injected(YT) == {"drop": 1}


async def test_failed_upload_leaves_nothing(sim: Simulator, http: aiohttp.ClientSession) -> None:
    channel = sim.add_account(YT)
    data = media_bytes("video/e.mp4", SIZE)
    _, uri = await start_session(sim, http, channel)
    sim.set_faults(YT, FaultConfig(error_rate=1.0))
    status, body, _ = await put(http, uri, data)
    assert (status, reason(body)) == (503, "backendError")
    sim.set_faults(YT, FaultConfig(throttle_rate=1.0))
    status, body, _ = await put(http, uri, data)
    assert (status, reason(body)) == (403, "rateLimitExceeded")
    sim.set_faults(YT, FaultConfig(timeout_rate=1.0, hang_s=60, timeout_commit_share=0.0))
    with pytest.raises(TimeoutError):
        await put(http, uri, data, client_timeout=aiohttp.ClientTimeout(total=0.3))
    sim.set_faults(YT, FaultConfig())
    status, _, headers = await status_query(http, uri)
    assert (status, headers.get("Range")) == (308, None)
    assert sim.audit.posts() == []
    assert sim.audit.violations() == []  # a throttle is not a violation
    # Resuming from the status works.
    status, _, _ = await put(http, uri, data)
    assert status == 201


async def test_token_ttl_refresh_and_revocation(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(access_token_ttl_s=60)) as sim:
        channel = sim.add_account(YT)
        creds = channel.credentials
        url = f"{sim.urls.youtube}/youtube/v3/channels"
        params = {"part": "contentDetails", "mine": "true"}

        async def channels(token: str) -> tuple[int, Any]:
            async with http.get(url, params=params, headers=bearer(token)) as response:
                return response.status, await response.json()

        assert (await channels(creds["access_token"]))[0] == 200
        sim.advance_clock(61)
        status, body = await channels(creds["access_token"])
        assert (status, reason(body)) == (401, "authError")

        form = {
            "grant_type": "refresh_token",
            "refresh_token": creds["refresh_token"],
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
        }
        async with http.post(sim.urls.youtube_token, data=form) as response:
            assert response.status == 200
            refreshed = await response.json()
        assert refreshed["expires_in"] == 59
        assert refreshed["token_type"] == "Bearer"
        assert (await channels(refreshed["access_token"]))[0] == 200

        async with http.post(
            sim.urls.youtube_token, data={**form, "client_secret": "wrong"}
        ) as response:
            assert (response.status, (await response.json())["error"]) == (401, "invalid_client")

        sim.revoke(YT, channel.external_id)
        assert (await channels(refreshed["access_token"]))[0] == 401
        async with http.post(sim.urls.youtube_token, data=form) as response:
            assert (response.status, (await response.json())["error"]) == (400, "invalid_grant")
        fresh = sim.reauthorize(YT, channel.external_id)
        assert (await channels(fresh["access_token"]))[0] == 200
        async with http.post(sim.urls.youtube_token, data=form) as response:
            assert response.status == 400  # the old refresh token stays dead


async def test_bucket_quota_and_pacific_reset(http: aiohttp.ClientSession) -> None:
    # 23:30 UTC on 28 Nov is 15:30 in Los Angeles (PST, UTC-8).
    start = datetime(2026, 11, 28, 23, 30, 0, tzinfo=UTC).timestamp()
    cfg = config(insert_calls_per_day=2, access_token_ttl_s=86_400)
    async with Simulator(cfg, clock=SimClock(start)) as sim:
        channel = sim.add_account(YT)
        assert (await start_session(sim, http, channel))[0] == 200
        assert (await start_session(sim, http, channel))[0] == 200
        assert sim.audit.violations() == []
        status, body = await start_session(sim, http, channel)
        assert (status, reason(body)) == (403, "quotaExceeded")
        assert body["error"]["errors"][0]["domain"] == "youtube.quota"
        assert [v.rule for v in sim.audit.violations()] == ["insert_calls"]
        sim.advance_clock(3600)  # 00:30 UTC: a new day in UTC, not yet in California
        assert (await start_session(sim, http, channel))[0] == 403
        sim.advance_clock(7.5 * 3600)  # 08:00 UTC = 00:00 PST: the quota day turns
        assert (await start_session(sim, http, channel))[0] == 200


async def test_units_quota(http: aiohttp.ClientSession) -> None:
    async with Simulator(
        config(quota_model="units", units_per_day=3202, insert_cost_units=1600)
    ) as sim:
        channel = sim.add_account(YT)
        token = bearer(channel.credentials["access_token"])
        assert (await start_session(sim, http, channel))[0] == 200
        assert (await start_session(sim, http, channel))[0] == 200
        url = f"{sim.urls.youtube}/youtube/v3/channels"
        params = {"part": "contentDetails", "mine": "true"}
        for _ in range(2):
            async with http.get(url, params=params, headers=token) as response:
                assert response.status == 200
        assert sim.audit.violations() == []
        async with http.get(url, params=params, headers=token) as response:
            assert (response.status, reason(await response.json())) == (403, "quotaExceeded")
        status, body = await start_session(sim, http, channel)
        assert (status, reason(body)) == (403, "quotaExceeded")
        assert [v.rule for v in sim.audit.violations()] == ["units", "units"]


async def test_channel_upload_cap(http: aiohttp.ClientSession) -> None:
    async with Simulator(config(uploads_per_channel_per_day=1)) as sim:
        first, second = sim.add_account(YT), sim.add_account(YT)
        assert (await start_session(sim, http, first))[0] == 200
        status, body = await start_session(sim, http, first)
        assert (status, reason(body)) == (400, "uploadLimitExceeded")
        assert (await start_session(sim, http, second))[0] == 200
        [violation] = sim.audit.violations()
        assert (violation.account, violation.rule) == (first.external_id, "channel_uploads")


async def test_metadata_validation(sim: Simulator, http: aiohttp.ClientSession) -> None:
    channel = sim.add_account(YT)
    status, body = await start_session(sim, http, channel, title="")
    assert (status, reason(body)) == (400, "invalidTitle")
    status, body = await start_session(sim, http, channel, title="x" * 101)
    assert (status, reason(body)) == (400, "invalidTitle")
    status, body = await start_session(sim, http, channel, token="expired-or-bogus")
    assert (status, reason(body)) == (401, "authError")


async def test_media_files_answer_like_a_static_file(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    url = sim.media_url("video", "m.mp4", size=SIZE)
    data = media_bytes("video/m.mp4", SIZE)
    async with http.get(url) as response:
        etag = response.headers["ETag"]
        assert (response.headers["Accept-Ranges"], response.content_length) == ("bytes", SIZE)
        assert await response.read() == data
    async with http.get(url, headers={"Range": "bytes=1000-", "If-Range": etag}) as response:
        assert response.status == 206
        assert response.headers["Content-Range"] == f"bytes 1000-{SIZE - 1}/{SIZE}"
        assert await response.read() == data[1000:]
    async with http.get(url, headers={"Range": "bytes=1000-1999", "If-Range": '"x"'}) as response:
        assert response.status == 200  # another validator: the whole file
        assert await response.read() == data
    async with http.get(url, headers={"Range": f"bytes={SIZE}-"}) as response:
        assert response.status == 416
    chunked = sim.media_url("video", "m.mp4", size=SIZE, length=False, ranges=False)
    async with http.get(chunked, headers={"Range": "bytes=1000-"}) as response:
        assert (response.status, response.content_length) == (200, None)
        assert "Accept-Ranges" not in response.headers
        assert await response.read() == data
    cut = sim.media_url("video", "m.mp4", size=SIZE, cut=5000)
    async with http.get(cut) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    async with http.get(cut, headers={"Range": "bytes=5000-"}) as response:
        assert await response.read() == data[5000:]  # past the cut: whole
