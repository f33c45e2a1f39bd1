"""Media files for connectors to download: deterministic bytes, any size, on any name.

``GET /media/<kind>/<name>?bytes=N`` answers N bytes (65536 by default) that depend only on
the name, so an uploader can be checked byte for byte. They are made as they are sent, a
piece at a time, so a file of gigabytes costs no memory. The simulated Instagram and
Facebook never fetch these URLs; connectors do, to upload to LinkedIn and YouTube.

The answer is an ordinary static file's: ``Content-Length``, a strong ``ETag`` (the bytes
depend on name and size only), ``Accept-Ranges: bytes``, and ``206`` to a single
``Range: bytes=<first>-[<last>]`` (unless an ``If-Range`` names another validator). Query
parameters make it a worse one, for tests and benchmarks:

- ``length=0``: no ``Content-Length``, the body is sent chunked;
- ``ranges=0``: no ranges, every answer is the whole file;
- ``cut=K``: the connection is closed once byte K - 1 of the file has been sent, so an
  answer that covers byte K never completes (one that starts after it does).
"""

from __future__ import annotations

import hashlib
import mimetypes
import random
import re
from collections.abc import Iterator
from functools import lru_cache

from aiohttp import web

from herald.simulator.wire import int_param

__all__ = [
    "DEFAULT_MEDIA_BYTES",
    "MAX_MEDIA_BYTES",
    "MEDIA_PREFIX",
    "media_bytes",
    "media_etag",
    "media_pieces",
    "media_sha256",
    "serve_media",
]

#: Where media files are served, on the admin port (and on YouTube's, where they began).
MEDIA_PREFIX = "/media/"
DEFAULT_MEDIA_BYTES = 65_536
MAX_MEDIA_BYTES = 64 * 1024**3  # made as they are sent: the size costs time, not memory
_BLOCK = 4096  # the period of a file's bytes
_PIECE = 64 * _BLOCK  # bytes per write
_KIND_TYPES = {"video": "video/mp4", "image": "image/jpeg"}
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@lru_cache(maxsize=256)
def _block(name: str) -> bytes:
    return random.Random(f"herald-media:{name}").randbytes(_BLOCK)


@lru_cache(maxsize=16)
def _run(name: str) -> bytes:
    """A piece and one block more of the file's repeating bytes: any piece is a slice."""
    return _block(name) * (_PIECE // _BLOCK + 1)


def media_pieces(name: str, start: int, end: int) -> Iterator[memoryview]:
    """Bytes ``start`` to ``end - 1`` of the file ``name``, at most 256 KiB at a time."""
    run = memoryview(_run(name))
    position = start
    while position < end:
        phase = position % _BLOCK
        count = min(_PIECE, end - position)
        yield run[phase : phase + count]
        position += count


def media_bytes(name: str, size: int) -> bytes:
    return b"".join(media_pieces(name, 0, size))


def media_sha256(name: str, size: int) -> str:
    """The SHA-256 of the file ``name`` of ``size`` bytes, computed a piece at a time."""
    digest = hashlib.sha256()
    for piece in media_pieces(name, 0, size):
        digest.update(piece)
    return digest.hexdigest()


def media_etag(name: str, size: int) -> str:
    """The file's strong validator: its bytes depend on its name and size only."""
    return f'"{hashlib.sha256(f"{name}:{size}".encode()).hexdigest()[:32]}"'


def _content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    if guessed is not None:
        return guessed
    return _KIND_TYPES.get(path.split("/", 1)[0], "application/octet-stream")


def _wanted(request: web.Request, size: int, etag: str) -> tuple[int, int] | None:
    """The byte range asked for, ``(first, end)``, or ``None`` for the whole file."""
    raw = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if raw is None or (if_range is not None and if_range != etag):
        return None
    match = _RANGE.match(raw.strip())
    if match is None:
        return None  # several ranges, suffixes: answered whole, as RFC 9110 allows
    first = int(match[1])
    end = min(size, int(match[2]) + 1) if match[2] else size
    if first >= size or first >= end:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return first, end


async def serve_media(request: web.Request) -> web.StreamResponse:
    path = request.match_info["path"]
    query = request.query
    size = int_param(query.get("bytes"), DEFAULT_MEDIA_BYTES, low=0, high=MAX_MEDIA_BYTES)
    cut = int_param(query.get("cut"), 0, low=0, high=MAX_MEDIA_BYTES)  # 0: no cut
    if size is None or cut is None:
        raise web.HTTPBadRequest(text=f"bytes and cut must be between 0 and {MAX_MEDIA_BYTES}")
    etag = media_etag(path, size)
    ranges = query.get("ranges") != "0"
    wanted = _wanted(request, size, etag) if ranges else None
    first, end = wanted or (0, size)
    response = web.StreamResponse(status=200 if wanted is None else 206)
    response.content_type = _content_type(path)
    response.headers["ETag"] = etag
    if ranges:
        response.headers["Accept-Ranges"] = "bytes"
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {first}-{end - 1}/{size}"
    if query.get("length") == "0":
        response.enable_chunked_encoding()
    else:
        response.content_length = end - first
    stop = cut if first < cut < end else end
    await response.prepare(request)
    for piece in media_pieces(path, first, stop):
        await response.write(piece)
    if stop < end:
        if request.transport is not None:
            request.transport.close()  # the file stops short: the client sees a broken body
        return response
    await response.write_eof()
    return response
