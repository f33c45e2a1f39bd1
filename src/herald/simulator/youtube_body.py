"""The body of a YouTube upload ``PUT`` as it arrives: counted and hashed in 256 KiB units.

A session keeps what arrived of an interrupted ``PUT`` in whole units of :data:`CHUNK_UNIT`
(:mod:`.youtube_upload`), so a unit goes into the SHA-256 only once all of it has arrived:
the digest then covers exactly the bytes a cut keeps, without hashing anything twice or
keeping the body. The unit still arriving is the one thing held, at most 256 KiB a request.
A body that arrives whole takes its last, partial unit into the digest as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _hashlib import HASH

    from aiohttp import StreamReader

__all__ = ["CHUNK_UNIT", "Arrival"]

#: Every chunk but the last is a multiple of this many bytes, and a cut keeps whole ones.
CHUNK_UNIT = 256 * 1024
_READ = 64 * 1024


class Arrival:
    """One ``PUT``'s body, on top of ``kept``: the digest of the bytes its session holds (a
    whole number of units, so this body's units line up with the session's)."""

    def __init__(self, kept: HASH) -> None:
        self._digest = kept.copy()
        self._unit = bytearray()  # the unit arriving: not in the digest yet
        self.size = 0  # bytes taken in

    async def read(self, content: StreamReader, limit: int | None = None) -> bool:
        """Take the body in to its end (True), or to ``limit`` bytes (False: stopped there).

        Raises what the stream raises when the client goes away before the end."""
        while limit is None or self.size < limit:
            want = _READ if limit is None else min(_READ, limit - self.size)
            piece = await content.read(want)
            if not piece:
                return True
            self.take(piece)
        return False

    def take(self, piece: bytes) -> None:
        self.size += len(piece)
        view = memoryview(piece)
        while view:
            room = CHUNK_UNIT - len(self._unit)
            self._unit += view[:room]
            view = view[room:]
            if len(self._unit) == CHUNK_UNIT:
                self._digest.update(self._unit)
                self._unit.clear()

    def units(self) -> tuple[int, HASH]:
        """What a cut keeps: the bytes in whole units, and the digest that ends with them."""
        return self.size - len(self._unit), self._digest

    def whole(self) -> tuple[int, HASH]:
        """Every byte taken in, and the digest that ends with them."""
        digest = self._digest.copy()
        digest.update(self._unit)
        return self.size, digest
