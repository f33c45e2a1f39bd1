"""Small request and response helpers shared by the simulated platforms."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

__all__ = [
    "bearer_token",
    "decode_position",
    "encode_position",
    "google_time",
    "graph_time",
    "int_param",
    "read_json_object",
]

_POSITION_PREFIX = "pos:"


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def read_json_object(request: web.Request) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` if it is empty, not JSON, or not an object."""
    raw = await request.read()
    if not raw:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def int_param(raw: str | None, default: int, *, low: int, high: int) -> int | None:
    """A bounded integer query parameter; ``None`` when it is present but unusable."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if low <= value <= high else None


def graph_time(unix: float) -> str:
    """Graph API timestamps: ``2026-11-28T17:08:01+0000``."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def google_time(unix: float) -> str:
    """Google API timestamps: ``2026-11-28T17:08:01Z``."""
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_position(index: int) -> str:
    """An opaque paging cursor or page token for an index into an append-only list.

    Indexes into a list that only grows stay valid while new posts arrive, so a client
    paging newest-first never skips a post that was already there when it started.
    """
    raw = f"{_POSITION_PREFIX}{index}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(token: str) -> int | None:
    """The index :func:`encode_position` wrote, or ``None`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    digits = raw.removeprefix(_POSITION_PREFIX)
    if digits == raw or not digits.isdigit():
        return None
    return int(digits)
