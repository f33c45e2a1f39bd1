"""YouTube connector (Data API v3): one video per post, uploaded with the resumable protocol.

A publish opens the video at its media URL (:mod:`herald.platforms.media`: refused there if
it is over ``max_media_bytes``), opens an upload session and streams the bytes to it in
chunks (:mod:`herald.platforms.youtube_upload` handles the chunks, drops and resumes). Every
call that YouTube answers with 401 is repeated once with a refreshed access token
(:mod:`herald.platforms.google_auth`). Look-ups read the channel's uploads playlist, whose id
is cached per channel, 50 videos a page, newest first, until a page reaches back before the
look-up window.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Mapping
from datetime import UTC, datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from yarl import URL

from herald.config import YouTubeSettings
from herald.constants import YouTubeHeader, YouTubePath, YouTubeReason
from herald.domain import Content, MediaKind, Platform
from herald.errors import PlatformError, RateLimited, TransientPlatformError
from herald.platforms.answers import ErrorAnswer, by_status
from herald.platforms.connector import HttpConnector
from herald.platforms.google_auth import GoogleTokens
from herald.platforms.http import HttpClient, HttpResponse, authorization, exchange, header
from herald.platforms.lookup import Candidate, Page, normalise, oldest, page_meter, parse_time, scan
from herald.platforms.rules import youtube_description, youtube_title
from herald.platforms.youtube_upload import VIDEO_TYPE, ResumableUpload
from herald.types import Published, PublishRequest

__all__ = ["PAGE_SIZE", "YouTubeConnector", "classify", "seconds_to_pacific_midnight"]

_PLATFORM = Platform.YOUTUBE.value
UPLOAD_CAP_WAIT_S = 86_400.0
#: Videos per playlistItems page a look-up asks for: the API's maximum ``maxResults``.
PAGE_SIZE = 50
QUOTA_TIMEZONE = "America/Los_Angeles"
_SEP = "\x1f"  # joins title and description for matching; never whitespace-normalised away


def seconds_to_pacific_midnight(now: datetime) -> float:
    """Seconds until the YouTube quota day ends: the next midnight in Pacific Time."""
    zone = ZoneInfo(QUOTA_TIMEZONE)
    local = now.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return (midnight.astimezone(UTC) - now.astimezone(UTC)).total_seconds()


def _reasons(data: object) -> list[str]:
    err = data.get("error") if isinstance(data, Mapping) else None
    items = err.get("errors") if isinstance(err, Mapping) else None
    if not isinstance(items, list):
        return []
    return [str(i["reason"]) for i in items if isinstance(i, Mapping) and "reason" in i]


def _message(data: object, status: int) -> str:
    err = data.get("error") if isinstance(data, Mapping) else None
    message = err.get("message") if isinstance(err, Mapping) else None
    return f"{_PLATFORM}: {str(message)[:300] if message else f'HTTP {status}'}"


def classify(answer: ErrorAnswer) -> PlatformError:
    """The YouTube table of docs/platforms.md: one error answer -> one Herald error."""
    data = answer.json()
    reasons = _reasons(data)
    message = _message(data, answer.status)
    code = reasons[0] if reasons else None
    kw: dict[str, Any] = {"platform": _PLATFORM, "status": answer.status, "code": code}
    if YouTubeReason.QUOTA_EXCEEDED in reasons:
        wait = seconds_to_pacific_midnight(answer.now)
        return RateLimited(message, retry_after=wait, scope="app", **kw)
    if {YouTubeReason.RATE_LIMIT_EXCEEDED, "userRateLimitExceeded"} & set(reasons):
        return answer.throttle(message, scope="channel", **kw)
    if YouTubeReason.UPLOAD_LIMIT_EXCEEDED in reasons:
        return RateLimited(message, retry_after=UPLOAD_CAP_WAIT_S, scope="channel", **kw)
    return by_status(answer, message, platform=_PLATFORM, code=code)


def _fingerprint(title: str, description: str) -> str:
    return f"{normalise(title)}{_SEP}{normalise(description)}"


class YouTubeConnector(HttpConnector[YouTubeSettings]):
    platform = Platform.YOUTUBE
    classify = staticmethod(classify)

    @cached_property
    def _tokens(self) -> GoogleTokens:
        return GoogleTokens(
            self._http, self._settings.token_url, pause_s=self._pause_s, clock=self._clock
        )

    @cached_property
    def _playlists(self) -> dict[str, str]:
        """Channel id -> the id of its uploads playlist, learnt by look-ups."""
        return {}

    def usage_of(self, content: Content) -> Mapping[str, int]:
        if self._settings.quota_model == "units":
            return {"units": self._settings.insert_cost_units, "uploads": 1}
        return {"insert_calls": 1, "uploads": 1}

    def lookup_usage(self) -> Mapping[str, int]:
        # Reserved before the look-up: channels.list (skipped once the playlist id is cached)
        # and the first playlistItems page, 1 unit each. Each further page of 50 videos in
        # the window costs 1 unit more, known only while paging (docs/platforms.md).
        return {"units": 2}

    def _sender(self, request: PublishRequest) -> _AuthorisedSender:
        return _AuthorisedSender(self._http, self._tokens, request)

    @exchange
    async def publish(self, request: PublishRequest) -> Published:
        self._ensure_valid(request.content)
        send = self._sender(request)
        video_url = next(m.url for m in request.content.media if m.kind is MediaKind.VIDEO)
        cap = self._settings.max_media_bytes
        async with self._http.open_media(video_url, max_bytes=cap) as video:
            # Opened first: a video over the cap is refused before the session costs quota.
            session_uri = await self._start_session(send, request.content, video.size)
            upload = ResumableUpload(
                send,
                session_uri,
                video,
                chunk_bytes=self._settings.upload_chunk_bytes,
                chunk_timeout_s=self._settings.timeout_s,
                fail=self._fail,
            )
            resource = await upload.run()
        video_id = str(resource["id"])
        return Published(video_id, url=f"https://www.youtube.com/watch?v={video_id}")

    async def _start_session(
        self, send: _AuthorisedSender, content: Content, size: int | None
    ) -> str:
        base = self._settings.upload_url
        body = {
            "snippet": {
                "title": youtube_title(content),
                "description": youtube_description(content),
                "categoryId": self._settings.category_id,
            },
            "status": {
                "privacyStatus": self._settings.privacy_status,
                "selfDeclaredMadeForKids": False,
            },
        }
        resp = await send(
            "POST",
            f"{base}{YouTubePath.UPLOAD}",
            params={"uploadType": "resumable", "part": "snippet,status"},
            headers=_session_headers(size),
            json=body,
        )
        if not resp.ok:
            raise self._fail(resp)
        location = header(resp.headers, "Location")
        if not location:
            raise TransientPlatformError(
                "youtube: upload session answered without Location", platform=_PLATFORM
            )
        return str(URL(base).join(URL(location)))

    @exchange
    async def find(self, request: PublishRequest) -> Published | None:
        send = self._sender(request)
        channel = request.channel.external_id
        playlist = await self._uploads_playlist(send, channel)

        async def fetch(token: str | None) -> Page[str]:
            params = {"part": "snippet", "playlistId": playlist, "maxResults": str(PAGE_SIZE)}
            if token is not None:
                params["pageToken"] = token
            resp = await send(
                "GET", f"{self._settings.base_url}{YouTubePath.PLAYLIST_ITEMS}", params=params
            )
            if resp.status == 404:  # a stale cached playlist id: read it again next time
                self._playlists.pop(channel, None)
            if not resp.ok:
                raise self._fail(resp)
            return _page(resp.json())

        wanted = _fingerprint(youtube_title(request.content), youtube_description(request.content))
        meter = page_meter(request, {"units": 1})  # 1 unit per playlistItems page
        found = await scan(fetch, wanted, request.since, _PLATFORM, next_page=meter)
        if found is None:
            return None
        return Published(found, url=f"https://www.youtube.com/watch?v={found}")

    async def _uploads_playlist(self, send: _AuthorisedSender, channel_id: str) -> str:
        cached = self._playlists.get(channel_id)
        if cached is not None:
            return cached
        resp = await send(
            "GET",
            f"{self._settings.base_url}{YouTubePath.CHANNELS}",
            params={"part": "contentDetails", "mine": "true"},
        )
        if not resp.ok:
            raise self._fail(resp)
        playlist = _uploads_of(resp.json(), channel_id)
        if playlist is None:
            raise TransientPlatformError(
                "youtube: channels.list gave no uploads playlist", platform=_PLATFORM
            )
        self._playlists[channel_id] = playlist
        return playlist


def _session_headers(size: int | None) -> dict[str, str]:
    """The upload's declared type, and its length when the media source declared one (the
    protocol takes an unknown length: the last chunk's ``Content-Range`` then tells it)."""
    headers: dict[str, str] = {YouTubeHeader.UPLOAD_TYPE: VIDEO_TYPE}
    if size is not None:
        headers[YouTubeHeader.UPLOAD_LENGTH] = str(size)
    return headers


class _AuthorisedSender:
    """Sends one publish's or look-up's calls; a 401 refreshes the token and repeats once."""

    def __init__(self, http: HttpClient, tokens: GoogleTokens, request: PublishRequest) -> None:
        self._http = http
        self._tokens = tokens
        self._channel = request.channel.external_id
        self._credentials = request.credentials

    async def __call__(
        self,
        method: str,
        url: str,
        *,
        creates_post: bool = False,
        headers: Mapping[str, str] | None = None,
        data: bytes | AsyncIterable[bytes] | None = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        def once(token: str) -> Awaitable[HttpResponse]:
            return self._http.request(
                method,
                url,
                creates_post=creates_post,
                data=data,
                json=json,
                params=params,
                headers={**(headers or {}), **authorization(token)},
            )

        token = self._tokens.current(self._channel, self._credentials)
        resp = await once(token)
        if resp.status != 401:
            return resp
        token = await self._tokens.refresh(self._channel, self._credentials, failed=token)
        return await once(token)


def _uploads_of(data: object, channel_id: str) -> str | None:
    items = data.get("items") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        return None
    channels = [i for i in items if isinstance(i, Mapping)]
    ours = [i for i in channels if i.get("id") == channel_id] or channels[:1]
    for item in ours:
        details = item.get("contentDetails")
        related = details.get("relatedPlaylists") if isinstance(details, Mapping) else None
        uploads = related.get("uploads") if isinstance(related, Mapping) else None
        if isinstance(uploads, str) and uploads:
            return uploads
    return None


def _page(data: object) -> Page[str]:
    posts = _candidates(data)
    token = data.get("nextPageToken") if isinstance(data, Mapping) else None
    return Page(
        posts,
        oldest(p.created_at for p in posts),
        token if isinstance(token, str) and token else None,
    )


def _candidates(data: object) -> list[Candidate]:
    items = data.get("items") if isinstance(data, Mapping) else None
    out: list[Candidate] = []
    for item in items if isinstance(items, list) else []:
        snippet = item.get("snippet") if isinstance(item, Mapping) else None
        if not isinstance(snippet, Mapping):
            continue
        resource = snippet.get("resourceId")
        video_id = resource.get("videoId") if isinstance(resource, Mapping) else None
        if not isinstance(video_id, str):
            continue
        text = _fingerprint(str(snippet.get("title") or ""), str(snippet.get("description") or ""))
        out.append(Candidate(video_id, text, parse_time(snippet.get("publishedAt"))))
    return out
