"""Only one engine may run on an embedded (SQLite) database: a second one would double-claim.

An advisory lock on ``<db>.engine.lock``; the OS drops it if the process dies, so a crash never
leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from herald.errors import ConfigError

__all__ = ["EngineLock"]


class EngineLock:
    """The engine lock of the database file at ``database_path``."""

    def __init__(self, database_path: str) -> None:
        self.path = Path(f"{database_path}.engine.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ConfigError(
                f"another Herald engine is already running on {self.path.with_suffix('')}"
            ) from exc
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
