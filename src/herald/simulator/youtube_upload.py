"""YouTube's resumable upload protocol: sessions, byte ranges, and the status query.

``POST /upload/youtube/v3/videos?uploadType=resumable`` is the videos.insert call: it is
charged to the quota and answers 200 with the session URI in ``Location``. ``PUT`` on that
URI carries bytes (whole, or in ``Content-Range`` chunks, ``/*`` while the client does not
know the length); every chunk but the last must be a multiple of 256 KiB (a 400 otherwise:
the documentation asks it, and a lenient simulator would let a connector rely on leniency).
Every PUT that carries bytes draws faults; the one that completes the file creates the
video. ``PUT`` with ``Content-Range: bytes */N`` and no body asks for the session's state:
308 (+ ``Range`` once bytes arrived), 200 with the video once complete, 404 once the session
is gone. That status query is a STATUS call for faults (:class:`~.config.CallKind`), drawn
once its session is found: an error or a throttle answers in Google's shape, a drop or a
timeout closes it unanswered, and the session stays as it was.

The bytes are read as they arrive, counted and hashed (SHA-256), never kept: the video's
record in the audit carries its size and digest, whatever its size.

A ``PUT`` interrupted while its body arrives (the client's connection closed, or a ``cut``
fault) leaves the session holding what arrived of it in whole 256 KiB units from the file's
start, never more than arrived (:mod:`.youtube_body` hashes in those units, so the digest
covers exactly what is kept); nothing of a body whose headers do not continue the session
where it stands. The status query then answers 308 with ``Range: bytes=0-<kept - 1>``
(without ``Range`` while nothing is kept), and a ``PUT`` from the kept length goes on. A
``PUT`` starting anywhere else is answered 308 with the session's ``Range``, nothing of it
kept.

Sources, and what is the simulator's own choice:

- the status query (an empty ``PUT``, ``Content-Range: bytes */<total>``), its 308 with
  ``Range: bytes=0-<last>``, and resuming with the bytes from ``last + 1``: YouTube Data API,
  "Resumable Uploads", steps 4.1 to 4.3; chunks in multiples of 256 KB: its "Uploading a file
  in chunks" (developers.google.com/youtube/v3/guides/using_resumable_upload_protocol);
- no ``Range`` while no byte was received: not on that page; Google's Python client relies on
  it (googleapis/google-api-python-client pull request 312);
- whole units kept of a cut body: the guide says to resume from the ``Range`` the status query
  gives, not how much of a cut request a session keeps; the 256 KiB unit is our choice, so
  that a connector that resumes from what it sent rather than from ``Range`` fails here;
- a ``PUT`` at another offset: the YouTube guide does not say. Cloud Storage documents that
  resent bytes it already holds are ignored (cloud.google.com/storage/docs/resumable-uploads,
  "resent data", as cited by Google's storage-testbench); the simulator answers with the
  session's state instead, which a client following the guide acts on just as well.

The session URI is the credential for the PUTs, as with Google: an access token that expired
during a long upload does not stop it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from herald.constants import YouTubeHeader, YouTubePath
from herald.domain import Platform
from herald.simulator.audit import PostRecord
from herald.simulator.config import CallKind, ContentKind
from herald.simulator.context import SimContext
from herald.simulator.faults import Fault
from herald.simulator.google import FAULT_ANSWERS, authenticate, google_error
from herald.simulator.pipeline import ConnectionDropped, Reply, faulty, identify, with_faults
from herald.simulator.wire import google_time, read_json_object
from herald.simulator.youtube_body import CHUNK_UNIT, Arrival
from herald.simulator.youtube_quota import YouTubeQuota

if TYPE_CHECKING:
    from _hashlib import HASH

__all__ = ["CHUNK_UNIT", "UploadSessions"]

_YT = Platform.YOUTUBE
_TITLE_MAX = 100
_DESCRIPTION_MAX_BYTES = 5000
_PRIVACY = ("private", "unlisted", "public")
_STATUS_QUERY = re.compile(r"^bytes \*/(\d+|\*)$")
_CHUNK = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(slots=True)
class _Session:
    id: str
    channel: str
    snippet: dict[str, Any]
    status: dict[str, Any]
    total: int | None
    created: float
    received: int = 0
    digest: HASH = field(default_factory=hashlib.sha256)  # of the bytes received (kept)
    video: dict[str, Any] | None = None


def _bad(reason: str, message: str, domain: str = "youtube.video") -> Reply:
    return Reply(google_error(400, reason, message, domain=domain))


def _check_text(value: Any, reason: str, limit: int, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise _bad(reason, f"The request metadata specifies an invalid value ({reason}).")
    if "<" in value or ">" in value or len(value.encode()) > limit:
        raise _bad(reason, f"The request metadata specifies an invalid value ({reason}).")
    return value


class UploadSessions:
    def __init__(
        self,
        ctx: SimContext,
        quota: YouTubeQuota,
        videos: defaultdict[str, list[dict[str, Any]]],
    ) -> None:
        self._ctx = ctx
        self._quota = quota
        self._videos = videos
        self._sessions: dict[str, _Session] = {}
        self._status_query = faulty(ctx, _YT, FAULT_ANSWERS, CallKind.STATUS, self._state)

    async def start(self, request: web.Request) -> web.StreamResponse:
        channel = authenticate(request, self._ctx)
        part = request.query.get("part", "")
        if request.query.get("uploadType") != "resumable":
            raise _bad("badRequest", "The simulator supports uploadType=resumable only.", "global")
        self._quota.charge_insert(channel)
        body = await read_json_object(request)
        if body is None or "snippet" not in part.split(","):
            raise _bad("invalidVideoMetadata", "The request must carry snippet metadata.")
        snippet, status = self._metadata(body)
        total = self._declared_length(request)
        session = _Session(
            self._ctx.ids.alnum(48), channel, snippet, status, total, self._ctx.clock.now()
        )
        self._sessions[session.id] = session
        location = (
            f"{request.url.origin()}{YouTubePath.UPLOAD}?uploadType=resumable"
            f"&part={part}&upload_id={session.id}"
        )
        return web.Response(
            status=200, headers={"Location": location, "X-GUploader-UploadID": session.id}
        )

    def channel_of(self, request: web.Request) -> str | None:
        """The channel an upload PUT acts for: the session URI says it."""
        session = self._sessions.get(request.query.get("upload_id", ""))
        return None if session is None else session.channel

    async def put(self, request: web.Request) -> web.StreamResponse:
        session = self._live(request)
        identify(request, self._ctx, _YT, session.channel)
        size, digest = (await self._take_in(request, session)).whole()
        content_range = request.headers.get("Content-Range", "")
        if not size and _STATUS_QUERY.match(content_range):
            return await self._status_query(request)
        if session.video is not None:
            return web.json_response(session.video, status=200)
        first, total = self._range(session, content_range, size)
        if first != session.received:
            return self._incomplete(session)
        end = first + size
        if end > total:
            raise _bad("badRequest", "More bytes than the declared length.", "global")
        if end < total and size % CHUNK_UNIT:
            raise _bad(
                "badRequest",
                f"A chunk other than the last must be a multiple of {CHUNK_UNIT} bytes.",
                "global",
            )

        def accept(delivered: bool) -> web.StreamResponse:
            session.received, session.digest = end, digest
            if end < total:
                return self._incomplete(session)
            video = self._publish(session, delivered)
            return web.json_response(video, status=201)

        return await with_faults(self._ctx, _YT, session.channel, FAULT_ANSWERS, accept)

    async def _state(self, request: web.Request) -> web.StreamResponse:
        """The status query's answer: the video once complete, else what the session holds."""
        session = self._live(request)
        if session.video is not None:
            return web.json_response(session.video, status=200)
        return self._incomplete(session)

    async def _take_in(self, request: web.Request, session: _Session) -> Arrival:
        """The body, read whole; or, when its connection is cut before the end (by the client
        or by a ``cut`` fault), what arrived of it in whole units joins the session, and the
        request ends there."""
        start = self._continues(session, request)
        arrival = Arrival(session.digest)
        cut = self._ctx.dice.cut_after(_YT, request.content_length or 0)
        try:
            whole = await arrival.read(request.content, cut)
        except (ConnectionError, asyncio.CancelledError):
            # The client went away: aiohttp fails the body's next read and, as the server
            # cancels the handlers of clients that leave, cancels this one. What arrived has
            # been read: asyncio wakes this reader for each piece before it handles the close.
            self._keep(session, start, arrival)
            raise
        if not whole:
            self._ctx.audit.injected_fault(_YT, Fault.CUT.value)
            self._keep(session, start, arrival)
            raise ConnectionDropped
        return arrival

    def _continues(self, session: _Session, request: web.Request) -> int | None:
        """Where this body continues the session, when its headers say it does (its first
        byte is the next one the session needs, its length fits the file); else ``None``:
        nothing of it could be kept."""
        declared = request.content_length
        if session.video is not None or not declared:
            return None
        try:
            first, total = self._range(session, request.headers.get("Content-Range", ""), declared)
        except Reply:
            return None
        end = first + declared
        if first != session.received or end > total or (end < total and declared % CHUNK_UNIT):
            return None  # not a chunk the session would take whole: none of it either
        return first

    @staticmethod
    def _keep(session: _Session, start: int | None, arrival: Arrival) -> None:
        """An interrupted body's whole units join the session, if it still stands where the
        body began (no other request moved it on meanwhile)."""
        if start is None or session.received != start or session.video is not None:
            return
        kept, digest = arrival.units()
        if kept:
            session.received, session.digest = start + kept, digest

    def _live(self, request: web.Request) -> _Session:
        session = self._sessions.get(request.query.get("upload_id", ""))
        now = self._ctx.clock.now()
        if session is None or now >= session.created + self._ctx.config.youtube.session_ttl_s:
            raise Reply(google_error(404, "notFound", "Not Found"))
        return session

    # -- steps ----------------------------------------------------------------------------
    @staticmethod
    def _metadata(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        snippet = body.get("snippet")
        status = body.get("status", {})
        if not isinstance(snippet, dict) or not isinstance(status, dict):
            raise _bad("invalidVideoMetadata", "snippet and status must be objects.")
        _check_text(snippet.get("title"), "invalidTitle", _TITLE_MAX, required=True)
        _check_text(
            snippet.get("description"),
            "invalidDescription",
            _DESCRIPTION_MAX_BYTES,
            required=False,
        )
        if status.get("privacyStatus", "private") not in _PRIVACY:
            raise _bad("invalidVideoMetadata", "status.privacyStatus is not valid.")
        return snippet, status

    @staticmethod
    def _declared_length(request: web.Request) -> int | None:
        raw = request.headers.get(YouTubeHeader.UPLOAD_LENGTH)
        kind = request.headers.get(YouTubeHeader.UPLOAD_TYPE, "video/*")
        if not (kind.startswith("video/") or kind == "application/octet-stream"):
            raise _bad("invalidContentType", f"{kind} is not a video type.")
        if raw is None:
            return None
        if not raw.isdigit() or int(raw) == 0:
            raise _bad(
                "badRequest",
                f"{YouTubeHeader.UPLOAD_LENGTH} must be a positive integer.",
                "global",
            )
        return int(raw)

    @staticmethod
    def _range(session: _Session, content_range: str, size: int) -> tuple[int, int]:
        """(offset of this chunk, total length of the file)."""
        match = _CHUNK.match(content_range)
        if match is None:
            if size == 0:
                raise _bad("mediaBodyRequired", "The request does not include the video content.")
            # No Content-Range: this body is the whole file.
            return session.received, session.total or session.received + size
        first, last, total_raw = match.groups()
        if int(last) - int(first) + 1 != size:
            raise _bad("badRequest", "Content-Range does not match the body length.", "global")
        total = session.total or (None if total_raw == "*" else int(total_raw))
        if total is None:
            # "*": the client does not know the length yet, so this chunk is not the last.
            total = int(first) + size + 1
        return int(first), total

    @staticmethod
    def _incomplete(session: _Session) -> web.StreamResponse:
        headers = {} if session.received == 0 else {"Range": f"bytes=0-{session.received - 1}"}
        return web.Response(status=308, headers=headers)

    def _publish(self, session: _Session, delivered: bool) -> dict[str, Any]:
        now = self._ctx.clock.now()
        title = str(session.snippet.get("title", ""))
        description = str(session.snippet.get("description") or "")
        video_id = self._ctx.ids.video_id()
        video = {
            "kind": "youtube#video",
            "etag": self._ctx.ids.alnum(27),
            "id": video_id,
            "snippet": {
                "publishedAt": google_time(now),
                "channelId": session.channel,
                "title": title,
                "description": description,
                "categoryId": str(session.snippet.get("categoryId", "22")),
                "liveBroadcastContent": "none",
            },
            "status": {
                "uploadStatus": "uploaded",
                "privacyStatus": session.status.get("privacyStatus", "private"),
                "license": "youtube",
                "embeddable": True,
                "publicStatsViewable": True,
                "selfDeclaredMadeForKids": bool(session.status.get("selfDeclaredMadeForKids")),
            },
        }
        session.video = video
        self._videos[session.channel].append(video)
        self._ctx.published(
            PostRecord(
                _YT,
                session.channel,
                video_id,
                description,
                now,
                delivered,
                title,
                media_bytes=session.received,
                media_sha256=session.digest.hexdigest(),
            ),
            ContentKind.VIDEO,
        )
        return video
