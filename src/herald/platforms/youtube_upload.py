"""YouTube's resumable upload protocol, from an open session to the video resource.

The video goes from its media download to the session in chunks (``upload_chunk_bytes``, a
multiple of 256 KiB as the protocol requires of every chunk but the last), each a ``PUT``
with ``Content-Range: bytes <first>-<last>/<total>`` (``/*`` while the length is unknown).
Only one chunk is held at a time, and one piece of the file beyond it (to tell the last chunk
from the others when the source declared no length). A non-final chunk is answered 308 with
``Range: bytes=0-<last>``: the next chunk starts after the last byte the session holds.

Only the chunk that carries the file's last byte can make a video. When a ``PUT`` loses its
connection, or answers 5xx, the session is asked for its status (``PUT``,
``Content-Range: bytes */<total>``):

- 200/201 with the video resource: the upload completed, the video exists;
- 308 with ``Range: bytes=0-<last>``: incomplete, resume from ``last + 1`` (the bytes are
  taken from the chunk held, or the media download goes back for them);
- 404: the session is gone and no video was made (transient: a new attempt starts over).

When that status query fails as well, the outcome is unknown once a last chunk was sent (this
one, or an earlier one whose answer was lost), and otherwise certain: no video was made (a
throttled one is then the throttle, :class:`RateLimited`, for the channel to wait it out). The
upload never goes on in that session without an answer: it never resends from byte 0 on a
guess.
:data:`MAX_STALLS` rounds in a row that move the session on by not one byte end the attempt
(transient; no video was made).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from herald.errors import (
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    RequestNotSent,
    TransientPlatformError,
)
from herald.platforms.http import HttpResponse, header
from herald.platforms.media import PIECE_BYTES, MediaDownload

__all__ = ["CHUNK_UNIT", "MAX_STALLS", "Chunk", "ResumableUpload", "Sender", "next_offset"]

_PLATFORM = "youtube"
#: Rounds in a row (a PUT and, when it failed, the status query) that leave the session
#: where it was, before an attempt gives up.
MAX_STALLS = 3
#: Every chunk but the last is a multiple of this many bytes (the protocol's rule).
CHUNK_UNIT = 256 * 1024
VIDEO_TYPE = "video/*"


class Sender(Protocol):
    def __call__(
        self,
        method: str,
        url: str,
        *,
        creates_post: bool = ...,
        headers: Mapping[str, str] | None = ...,
        data: bytes | AsyncIterable[bytes] | None = ...,
    ) -> Awaitable[HttpResponse]: ...


def next_offset(headers: Mapping[str, str]) -> int:
    """The first byte the session still needs, from a 308's ``Range: bytes=0-<last>``."""
    raw = header(headers, "Range")
    if raw is None or "-" not in raw:
        return 0
    last = raw.rsplit("-", 1)[1].strip()
    return int(last) + 1 if last.isdigit() else 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes ``first`` to ``first + size - 1`` of a file of ``total`` bytes (``None``: not
    known yet); ``final`` when they end the file. They are the first ``size`` bytes of
    ``held``, the upload's buffer, until the next chunk is asked for."""

    first: int
    size: int
    total: int | None
    final: bool
    held: bytearray

    def body(self) -> bytes | AsyncIterable[bytes]:
        """The bytes as a request body, copied a piece at a time as they are written (no
        second copy of the chunk), and read afresh by every request that sends it (a 401
        repeats the request)."""
        return _Pieces(self.held, self.size) if self.size else b""

    @property
    def content_range(self) -> str:
        total = "*" if self.total is None else str(self.total)
        if not self.size:  # every byte arrived, only completion is missing
            return f"bytes */{total}"
        return f"bytes {self.first}-{self.first + self.size - 1}/{total}"


class _Pieces:
    def __init__(self, held: bytearray, size: int) -> None:
        self._held = held
        self._size = size

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        for start in range(0, self._size, PIECE_BYTES):
            yield bytes(self._held[start : min(start + PIECE_BYTES, self._size)])


class _Chunks:
    """The upload's one buffer: bytes ``[start, start + len(buffer))`` of the file."""

    def __init__(self, source: MediaDownload, chunk_bytes: int, timeout_s: float) -> None:
        self._source = source
        self._size = chunk_bytes
        self._timeout_s = timeout_s
        self._buffer = bytearray()
        self._start = 0
        self._ended = False

    async def at(self, offset: int) -> Chunk:
        """The chunk starting at ``offset``; each must arrive within ``timeout_s``."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._align(offset)
                await self._fill()
        except TimeoutError as exc:
            raise TransientPlatformError(
                f"{_PLATFORM}: media download failed (too slow)", platform=_PLATFORM
            ) from exc
        size = min(len(self._buffer), self._size)
        final = self._ended and len(self._buffer) <= self._size
        total = offset + size if final else self._source.size
        if final and total == 0:
            raise ContentRejected(f"{_PLATFORM}: the media file is empty", platform=_PLATFORM)
        return Chunk(offset, size, total, final, self._buffer)

    async def _align(self, offset: int) -> None:
        end = self._start + len(self._buffer)
        if self._start <= offset <= end:
            del self._buffer[: offset - self._start]
        else:  # bytes the buffer no longer holds (or never did): the download seeks them
            self._buffer.clear()
            self._ended = False
            await self._source.seek(offset)
        self._start = offset

    async def _fill(self) -> None:
        # One byte beyond the chunk tells whether the file goes on after it.
        while not self._ended and len(self._buffer) <= self._size:
            piece = await self._source.read(self._size + 1 - len(self._buffer))
            if piece:
                self._buffer += piece
            else:
                self._ended = True


class ResumableUpload:
    def __init__(
        self,
        send: Sender,
        session_uri: str,
        video: MediaDownload,
        *,
        chunk_bytes: int,
        chunk_timeout_s: float,
        fail: Callable[[HttpResponse], PlatformError],
    ) -> None:
        self._send = send
        self._uri = session_uri
        self._chunks = _Chunks(video, chunk_bytes, chunk_timeout_s)
        self._fail = fail
        self._final_sent = False  # a chunk carrying the file's last byte went out

    async def run(self) -> Mapping[str, Any]:
        """Upload and return the video resource; raise when no video is known to exist."""
        offset = stalls = 0
        while True:
            chunk = await self._chunks.at(offset)
            resp = await self._put(chunk)
            if resp.status != 308:
                return self._finished(resp)
            acknowledged = next_offset(resp.headers)
            stalls = stalls + 1 if acknowledged <= offset else 0
            if stalls >= MAX_STALLS:
                raise TransientPlatformError(
                    f"{_PLATFORM}: upload still incomplete after {MAX_STALLS} tries; "
                    "no video was made",
                    platform=_PLATFORM,
                )
            offset = acknowledged

    async def _put(self, chunk: Chunk) -> HttpResponse:
        headers = {
            "Content-Type": VIDEO_TYPE,
            "Content-Length": str(chunk.size),
            "Content-Range": chunk.content_range,
        }
        final_before, self._final_sent = self._final_sent, self._final_sent or chunk.final
        try:
            resp = await self._send(
                "PUT", self._uri, creates_post=chunk.final, headers=headers, data=chunk.body()
            )
        except RequestNotSent as exc:
            if final_before:  # an earlier last chunk was interrupted: it may yet have counted
                raise self._interrupted("the resumed upload could not be sent") from exc
            raise  # the session holds what it held: nothing was made, nothing to ask
        except (OutcomeUnknown, TransientPlatformError) as exc:
            return await self._status(exc, chunk)
        if resp.status >= 500:
            return await self._status(self._fail(resp), chunk)
        return resp

    async def _status(self, cause: PlatformError, chunk: Chunk) -> HttpResponse:
        """Ask the session how far it got; unknown outcome if it cannot say and a chunk sent
        could have completed the video."""
        total = "*" if chunk.total is None else str(chunk.total)
        headers = {"Content-Length": "0", "Content-Range": f"bytes */{total}"}
        try:
            resp = await self._send("PUT", self._uri, headers=headers, data=b"")
        except PlatformError as exc:
            raise self._interrupted("its session status could not be read") from exc
        if resp.status in (200, 201, 308, 404):
            return resp
        refusal = self._fail(resp)
        if isinstance(refusal, RateLimited) and not self._final_sent:
            raise refusal from cause
        raise self._interrupted(
            f"session status answered HTTP {resp.status}", resp.status
        ) from cause

    def _interrupted(self, why: str, status: int | None = None) -> PlatformError:
        """Unknown once a last chunk was sent (this one or an earlier one whose answer was
        lost); before that, certain: no video was made."""
        if self._final_sent:
            return OutcomeUnknown(
                f"{_PLATFORM}: upload interrupted; {why}", platform=_PLATFORM, status=status
            )
        return TransientPlatformError(
            f"{_PLATFORM}: upload interrupted before its last chunk ({why}); no video was made",
            platform=_PLATFORM,
            status=status,
        )

    def _finished(self, resp: HttpResponse) -> Mapping[str, Any]:
        if resp.status == 404:
            raise TransientPlatformError(
                "youtube: upload session gone; no video was made", platform=_PLATFORM, status=404
            )
        if not resp.ok:
            raise self._fail(resp)
        data = resp.json()
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
            raise OutcomeUnknown(
                "youtube: upload complete but the answer carries no video id",
                platform=_PLATFORM,
                status=resp.status,
            )
        return data
