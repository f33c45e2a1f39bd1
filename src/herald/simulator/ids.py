"""Identifier shapes of each platform, drawn from a seeded generator so runs repeat."""

from __future__ import annotations

import itertools
import random
import string

__all__ = ["IdFactory"]

_ALNUM = string.ascii_letters + string.digits
_URLSAFE = _ALNUM + "-_"


class IdFactory:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"herald-simulator:{seed}:ids")
        self._seen: set[str] = set()
        # Post and media ids only need to be unique and platform-shaped; counters are cheap.
        self._serial = itertools.count(1)

    def digits(self, prefix: str, length: int) -> str:
        while True:
            value = prefix + "".join(self._rng.choices(string.digits, k=length - len(prefix)))
            if value not in self._seen:
                self._seen.add(value)
                return value

    def chars(self, prefix: str, length: int, alphabet: str = _URLSAFE) -> str:
        while True:
            value = prefix + "".join(self._rng.choices(alphabet, k=length))
            if value not in self._seen:
                self._seen.add(value)
                return value

    def secret(self, prefix: str) -> str:
        return f"{prefix}{self._rng.getrandbits(160):040x}"

    def serial(self, base: int) -> str:
        """A numeric id ``base + n``: unique within this simulator, sortable by creation."""
        return str(base + next(self._serial))

    def video_id(self) -> str:
        return self.chars("", 11)

    def alnum(self, length: int) -> str:
        return self.chars("", length, _ALNUM)
