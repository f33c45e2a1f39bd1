"""Media files read from a tenant's URL a piece at a time, under the platform's size cap.

Herald uploads a YouTube video or a LinkedIn image from the URL its post names. The file is
never held whole: :class:`MediaDownload` hands out pieces as the uploader asks for them, and
the uploader keeps at most one upload chunk, so memory stays flat whatever the file's size.

The cap (``<platform>.max_media_bytes``) is checked twice. A ``Content-Length`` over it is
refused before a byte of the body is read; and every byte is counted as it arrives, so a
body without a length (chunked, or compressed: its declared length is not the length that
comes out) is cut off at the first byte over the cap. Either is :class:`ContentRejected`
("media too large"): the same file would be refused again, so it is never retried.

A source that drops mid-body is asked again from where it stopped: ``Range: bytes=<n>-``,
with ``If-Range`` when its first answer named a validator, so a file that changed meanwhile
comes back whole instead of being spliced onto the old one. A source that answers the whole
file again is read from its start and the bytes already had are skipped; one whose length or
validator changed fails the download. At most :data:`MAX_REOPENS` times per download.

The other failures are those a download always had: an address the egress policy refuses
(final, in the same words whatever is behind it), 400/401/403/404/410 (final), anything else
(the host unreachable, silent for the read timeout, another status) transient: the media host
is not the platform, and says nothing about whether the platform is up.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from types import TracebackType

import aiohttp
from multidict import CIMultiDictProxy

from herald.errors import ContentRejected, EgressRefused, TransientPlatformError

__all__ = ["MAX_REOPENS", "PIECE_BYTES", "MediaDownload", "size_text"]

#: Times one download asks its source again after a drop, before it fails (transient).
MAX_REOPENS = 3
#: The most :meth:`MediaDownload.pieces` hands out at once (and skipping reads at once).
PIECE_BYTES = 256 * 1024
#: Statuses that mean the URL will not serve this file, however often it is asked.
REFUSED_STATUSES = frozenset({400, 401, 403, 404, 410})
#: Failures of the source while a body is read; a URL aiohttp cannot use is a ValueError.
_FAILURES = (TimeoutError, aiohttp.ClientError, ValueError)
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNITS = (("GiB", 1 << 30), ("GB", 10**9), ("MiB", 1 << 20), ("MB", 10**6), ("KiB", 1 << 10))


def size_text(size: int) -> str:
    """A byte count as people write it when it is a round number (256 GB, 8 MiB)."""
    for unit, factor in _UNITS:
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size:,} bytes"


class MediaDownload:
    """One media file being read from its URL (see the module's doc).

    Opened as an async context manager: entering sends the request and checks the answer's
    status and length; ``size`` is then the file's length when the source declared one that
    can be trusted, else ``None``. ``position`` is the offset in the file of the next byte
    :meth:`read` returns.
    """

    def __init__(
        self, session: aiohttp.ClientSession, url: str, *, platform: str, max_bytes: int
    ) -> None:
        self._session = session
        self._url = url
        self._platform = platform
        self._max = max_bytes
        self._response: aiohttp.ClientResponse | None = None
        self._validator: str | None = None  # the first answer's strong ETag or Last-Modified
        self._reopens = 0
        self.size: int | None = None
        self.position = 0

    async def __aenter__(self) -> MediaDownload:
        await self._open(0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``position``; ``b""`` at the end of the file."""
        while True:
            response = self._response
            if response is None:  # a failed reopen left none: ask again (counted)
                await self._reopen(None)
                continue
            try:
                # At most a piece: aiohttp buffers up to twice the largest read asked of it.
                piece = await response.content.read(min(limit, PIECE_BYTES))
            except _FAILURES as exc:
                await self._reopen(exc)
                continue
            self.position += len(piece)
            if self.position > self._max:
                self._close()
                raise self._too_large(None)
            return piece

    async def pieces(self) -> AsyncIterator[bytes]:
        """The rest of the file, :data:`PIECE_BYTES` at most at a time (a request body)."""
        while piece := await self.read(PIECE_BYTES):
            yield piece

    async def seek(self, offset: int) -> None:
        """Go on from ``offset``: forward by skipping, back by asking the source again."""
        if offset > self.position:
            await self._skip(offset - self.position)
        elif offset < self.position:
            self._close()
            await self._open(offset)

    # -- steps ----------------------------------------------------------------------------
    async def _skip(self, count: int) -> None:
        while count > 0:
            piece = await self.read(min(count, PIECE_BYTES))
            if not piece:
                raise self._transient("the media file ended early")
            count -= len(piece)

    async def _reopen(self, cause: BaseException | None) -> None:
        self._close()
        if self._reopens >= MAX_REOPENS:
            kind = type(cause).__name__ if cause is not None else "gave up"
            raise self._transient(f"media download failed ({kind})") from cause
        self._reopens += 1
        await self._open(self.position)

    async def _open(self, offset: int) -> None:
        headers = {"Accept-Encoding": "identity"}  # offsets and lengths of the file itself
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self._validator is not None:
                headers["If-Range"] = self._validator
        try:
            response = await self._session.get(self._url, headers=headers, allow_redirects=False)
        except EgressRefused as exc:
            raise ContentRejected(
                f"{self._platform}: media URL refused: address not allowed",
                platform=self._platform,
            ) from exc
        except _FAILURES as exc:
            # Only the exception's class: aiohttp's texts can repeat the URL and the address.
            raise self._transient(f"media download failed ({type(exc).__name__})") from exc
        try:
            start = self._check(response, offset)
        except BaseException:
            response.close()
            raise
        self._response, self.position = response, start
        if start < offset:
            await self._skip(offset - start)

    def _check(self, response: aiohttp.ClientResponse, offset: int) -> int:
        """Where in the file ``response``'s body starts, once its answer is acceptable."""
        status = response.status
        if status not in (200, 206) or (status == 206 and not offset):
            message = f"{self._platform}: media download answered HTTP {status}"
            if status in REFUSED_STATUSES:
                raise ContentRejected(message, platform=self._platform, status=status)
            raise TransientPlatformError(message, platform=self._platform, status=status)
        headers = response.headers
        if not offset:
            self._learn(headers)
            return 0
        if status == 206:
            return self._range_start(headers, offset)
        self._same_file(headers)  # the whole file again: the caller skips what it had
        return 0

    def _learn(self, headers: CIMultiDictProxy[str]) -> None:
        """The first answer: its length (checked against the cap) and its validator."""
        self.size = _declared_length(headers)
        if self.size is not None and self.size > self._max:
            raise self._too_large(self.size)
        etag = headers.get("ETag")
        strong = etag if etag and not etag.startswith("W/") else None
        self._validator = strong or headers.get("Last-Modified")

    def _range_start(self, headers: CIMultiDictProxy[str], offset: int) -> int:
        match = _CONTENT_RANGE.match(headers.get("Content-Range", ""))
        if match is None or int(match[1]) != offset:
            raise self._transient("the media source answered another byte range")
        total = None if match[3] == "*" else int(match[3])
        if self.size is not None and total is not None and total != self.size:
            raise self._transient("the media file changed while it was read")
        return offset

    def _same_file(self, headers: CIMultiDictProxy[str]) -> None:
        etag, modified = headers.get("ETag"), headers.get("Last-Modified")
        length = _declared_length(headers)
        changed = self._validator is not None and self._validator not in (etag, modified)
        if changed or (self.size is not None and length is not None and length != self.size):
            raise self._transient("the media file changed while it was read")

    def _close(self) -> None:
        if self._response is not None:
            self._response.close()  # never reads what is left of the body
            self._response = None

    def _too_large(self, declared: int | None) -> ContentRejected:
        said = "" if declared is None else f" ({size_text(declared)} declared)"
        return ContentRejected(
            f"{self._platform}: media too large: over {size_text(self._max)}{said}",
            platform=self._platform,
        )

    def _transient(self, what: str) -> TransientPlatformError:
        return TransientPlatformError(f"{self._platform}: {what}", platform=self._platform)


def _declared_length(headers: CIMultiDictProxy[str]) -> int | None:
    """``Content-Length``, when it is the length of the file (not of a compressed form)."""
    if headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    raw = headers.get("Content-Length", "")
    return int(raw) if raw.isdigit() else None
