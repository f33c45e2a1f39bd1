"""Media files for connectors to download: deterministic bytes, any size, on any name.

``GET /media/<kind>/<name>?bytes=N`` answers N bytes (65536 by default) that depend only on
the name, so an uploader can be checked byte for byte. The simulated Instagram and Facebook
never fetch these URLs; connectors do, to upload to LinkedIn and YouTube.
"""

from __future__ import annotations

import mimetypes
import random
from functools import lru_cache

from aiohttp import web

from herald.simulator.wire import int_param

__all__ = ["DEFAULT_MEDIA_BYTES", "MAX_MEDIA_BYTES", "MEDIA_PREFIX", "media_bytes", "serve_media"]

#: Where media files are served, on the admin port (and on YouTube's, where they began).
MEDIA_PREFIX = "/media/"
DEFAULT_MEDIA_BYTES = 65_536
MAX_MEDIA_BYTES = 256 * 1024 * 1024
_BLOCK = 4096
_KIND_TYPES = {"video": "video/mp4", "image": "image/jpeg"}


@lru_cache(maxsize=256)
def _block(name: str) -> bytes:
    return random.Random(f"herald-media:{name}").randbytes(_BLOCK)


def media_bytes(name: str, size: int) -> bytes:
    block = _block(name)
    repeats = size // _BLOCK + 1
    return (block * repeats)[:size]


def _content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    if guessed is not None:
        return guessed
    return _KIND_TYPES.get(path.split("/", 1)[0], "application/octet-stream")


async def serve_media(request: web.Request) -> web.StreamResponse:
    path = request.match_info["path"]
    size = int_param(request.query.get("bytes"), DEFAULT_MEDIA_BYTES, low=0, high=MAX_MEDIA_BYTES)
    if size is None:
        raise web.HTTPBadRequest(text=f"bytes must be between 0 and {MAX_MEDIA_BYTES}")
    return web.Response(body=media_bytes(path, size), content_type=_content_type(path))
