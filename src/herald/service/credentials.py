"""Channel secrets: a channel stores a *reference*, resolved to its tokens when publishing.

References:

- ``env:NAME``: the environment variable ``NAME`` holds a JSON object or a bare access token;
- ``file:/path/secrets.json#key``: the JSON object under ``key`` in that file (no ``#key``: the
  whole file is the object).

Secrets are cached for ``ttl_s`` and dropped at once when a platform refuses them, so a user
who re-authorises a channel is picked up at the next attempt. A secrets file is parsed once for
all the channels that point into it, and again when it changed on disk, ``ttl_s`` after it was
read, or once a platform refused one of its channels' secrets: a file of thousands of channels
is not read once per channel.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herald.domain import Channel
from herald.errors import AuthExpired
from herald.types import Credentials

__all__ = ["RefResolver", "SecretsFile"]


def _json_object(raw: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise AuthExpired(f"{where} are not valid JSON") from exc
    if not isinstance(value, dict):
        raise AuthExpired(f"{where} are not a JSON object")
    return value


def _parse(raw: str, ref: str) -> dict[str, str]:
    raw = raw.strip()
    if raw.startswith("{"):
        value = _json_object(raw, f"credentials at {ref!r}")
        return {str(k): str(v) for k, v in value.items()}
    if not raw:
        raise AuthExpired(f"credentials at {ref!r} are empty")
    return {"access_token": raw}


@contextmanager
def _reading(path: str) -> Iterator[None]:
    """A credentials file's errors, told without its contents."""
    try:
        yield
    except OSError as exc:
        raise AuthExpired(f"cannot read credentials file {path!r}: {exc.strerror}") from exc
    except UnicodeDecodeError:  # the error would carry the file's bytes: secrets
        raise AuthExpired(f"credentials file {path!r} is not UTF-8 text") from None
    except ValueError as exc:  # a NUL byte in the path
        raise AuthExpired(f"credentials file {path!r} is not a valid path") from exc


def _read(path: str) -> str:
    with _reading(path):
        return Path(path).read_text(encoding="utf-8")


def _signature(path: str) -> tuple[int, int, int]:
    """What changes when a file is replaced or written: its inode, size and modification time."""
    with _reading(path):
        found = os.stat(path)
    return found.st_ino, found.st_size, found.st_mtime_ns


@dataclass(frozen=True, slots=True)
class _ParsedFile:
    """A secrets file as read: its entries, while its signature holds, until ``until``."""

    signature: tuple[int, int, int]
    until: float  # time.monotonic()
    entries: dict[str, Any]


class RefResolver:
    """Implements :class:`herald.types.CredentialResolver` for ``env:`` and ``file:`` refs."""

    def __init__(self, *, ttl_s: float = 60.0, environ: Mapping[str, str] | None = None) -> None:
        self._ttl_s = ttl_s
        self._environ = environ if environ is not None else os.environ
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}
        self._files: dict[str, _ParsedFile] = {}  # by path

    async def resolve(self, channel: Channel) -> Credentials:
        ref = channel.credentials_ref
        hit = self._cache.get(ref)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        secrets = self._load(ref)
        self._cache[ref] = (now + self._ttl_s, secrets)
        return secrets

    def forget(self, channel: Channel) -> None:
        ref = channel.credentials_ref
        self._cache.pop(ref, None)
        scheme, _, rest = ref.partition(":")
        if scheme == "file":
            self._files.pop(rest.partition("#")[0], None)

    def _load(self, ref: str) -> dict[str, str]:
        scheme, _, rest = ref.partition(":")
        if scheme == "env":
            if rest not in self._environ:
                raise AuthExpired(f"environment variable {rest!r} is not set")
            return _parse(self._environ[rest], ref)
        if scheme == "file":
            path, _, key = rest.partition("#")
            if not key:
                return _parse(_read(path), ref)
            entries = self._entries(path)
            if key not in entries:
                raise AuthExpired(f"no credentials under {key!r} in {path!r}")
            entry = entries[key]
            return _parse(json.dumps(entry) if isinstance(entry, dict) else str(entry), ref)
        raise AuthExpired(f"unsupported credentials reference scheme {scheme!r}")

    def _entries(self, path: str) -> dict[str, Any]:
        """The secrets file at ``path``, parsed; read again once it changed on disk (a
        rename, or a write), ``ttl_s`` after it was read, or after :meth:`forget`."""
        signature = _signature(path)
        now = time.monotonic()
        parsed = self._files.get(path)
        if parsed is not None and parsed.signature == signature and parsed.until > now:
            return parsed.entries
        entries = _json_object(_read(path), f"the contents of credentials file {path!r}")
        self._files[path] = _ParsedFile(signature, now + self._ttl_s, entries)
        return entries


class SecretsFile:
    """A JSON file of per-channel secrets that ``file:<path>#<channel id>`` refs point into.

    Written atomically (rename) with owner-only permissions, so a resolver never reads half a
    file and other users never read it at all.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, dict[str, str]] = {}
        if path.exists():
            self._entries = json.loads(path.read_text(encoding="utf-8"))

    def ref(self, channel_id: str) -> str:
        return f"file:{self.path}#{channel_id}"

    def put(self, channel_id: str, credentials: Mapping[str, str]) -> str:
        self._entries[channel_id] = dict(credentials)
        self._write()
        return self.ref(channel_id)

    def put_many(self, entries: Mapping[str, Mapping[str, str]]) -> None:
        self._entries.update({k: dict(v) for k, v in entries.items()})
        self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(self._entries, out)
        tmp.replace(self.path)
