"""Loading the wire fixtures of ``tests/wire/<platform>/*.json`` (the format: README.md).

A fixture is data transcribed from a platform's documentation; this module only reads it,
checks it has the fields the tests rely on, and fills its placeholders (``{page-id}``) with
the values of one test's world.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EXPECTATIONS",
    "PLATFORMS",
    "Fixture",
    "WireRequest",
    "WireResponse",
    "fill",
    "load_all",
]

HERE = Path(__file__).parent
PLATFORMS = ("facebook", "instagram", "linkedin", "youtube")
#: What a connector must make of a response fixture. The error names are Herald's exception
#: classes (tests/unit/test_wire_connectors.py maps them); the others are flows that succeed.
EXPECTATIONS = frozenset(
    {
        "published",
        "listed",
        "resume",
        "rate_limited",
        "auth_expired",
        "content_rejected",
        "duplicate",
        "transient",
        "outcome_unknown",
        "media_not_ready",
    }
)
_PLACEHOLDER = re.compile(r"\{[a-z0-9-]+\}")
_REQUIRED = ("platform", "name", "source", "retrieved", "confirmed", "request", "response")


@dataclass(frozen=True, slots=True)
class WireRequest:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    #: A JSON body, ``{"bytes": n}`` for n bytes of media, or ``None``.
    body: Any


@dataclass(frozen=True, slots=True)
class WireResponse:
    status: int
    headers: Mapping[str, str]
    #: ``None`` with ``has_body`` False: the documentation shows no body (none is compared).
    body: Any
    has_body: bool


@dataclass(frozen=True, slots=True)
class Fixture:
    path: Path
    platform: str
    name: str
    source: str
    retrieved: str
    confirmed: bool
    request: WireRequest
    response: WireResponse
    #: ``None``: a call Herald's connector never makes (a simulator-only fixture).
    expect: str | None
    expect_detail: Mapping[str, Any]
    #: The request is the one that can create the post (an error then proves nothing).
    creates_post: bool
    #: The state the simulator must be in to give this answer.
    situation: str
    #: Body paths that may be absent on either side; objects that may carry more keys.
    optional: frozenset[str] = field(default_factory=frozenset)
    open: frozenset[str] = field(default_factory=frozenset)

    @property
    def id(self) -> str:
        return f"{self.platform}/{self.name}"


def _load(path: Path) -> Fixture:
    raw = json.loads(path.read_text())
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    req, resp = raw["request"], raw["response"]
    return Fixture(
        path=path,
        platform=raw["platform"],
        name=raw["name"],
        source=raw["source"],
        retrieved=raw["retrieved"],
        confirmed=raw["confirmed"],
        request=WireRequest(
            req["method"], req["path"], req.get("query", {}), req.get("headers", {}), req["body"]
        ),
        response=WireResponse(
            resp["status"], resp.get("headers", {}), resp.get("body"), "body" in resp
        ),
        expect=raw.get("expect"),
        expect_detail=raw.get("expect_detail", {}),
        creates_post=raw.get("creates_post", False),
        situation=raw.get("situation", "account"),
        optional=frozenset(raw.get("optional", ())),
        open=frozenset(raw.get("open", ())),
    )


def load_all(platform: str | None = None) -> list[Fixture]:
    """Every fixture (of one platform), in a stable order."""
    platforms = PLATFORMS if platform is None else (platform,)
    return [_load(path) for name in platforms for path in sorted((HERE / name).glob("*.json"))]


def placeholders(value: Any) -> Iterator[str]:
    """The ``{name}`` placeholders in a string, or in the strings of a JSON value."""
    if isinstance(value, str):
        yield from _PLACEHOLDER.findall(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from placeholders(key)
            yield from placeholders(item)
    elif isinstance(value, list):
        for item in value:
            yield from placeholders(item)


def fill(value: Any, world: Mapping[str, str]) -> Any:
    """``value`` with every placeholder that ``world`` names replaced by its value."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: world.get(m.group(0), m.group(0)), value)
    if isinstance(value, Mapping):
        return {fill(k, world): fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(item, world) for item in value]
    return value
