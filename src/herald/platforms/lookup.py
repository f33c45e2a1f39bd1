"""Recognising the post a delivery may already have made among a channel's recent posts.

A platform post matches when its text equals, whitespace-normalised, the text the connector
would send for the delivery's content, and it was created at or after ``since`` minus
:data:`CLOCK_SKEW` (the platform's clock and ours need not agree). A post without a readable
creation time cannot be shown to be recent, so it never matches. A delivery without text
cannot be told apart from the channel's other text-less posts: its look-up is refused
(:class:`ReconcileUnsupported`) and the engine leaves the decision to the user rather than
guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from herald.errors import ReconcileUnsupported

__all__ = [
    "CLOCK_SKEW",
    "Candidate",
    "find_match",
    "from_epoch_ms",
    "normalise",
    "parse_time",
    "require_text",
]

CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One recent post as listed by the platform, reduced to what matching needs."""

    external_id: str
    text: str
    created_at: datetime | None


def normalise(text: str) -> str:
    return " ".join(text.split())


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 instant as the platforms write it (``...+0000``, ``...Z``), made UTC."""
    if not isinstance(value, str) or not value:
        return None
    raw = value.strip()
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    elif len(raw) > 5 and raw[-5] in "+-" and raw[-4:].isdigit():  # +0000 -> +00:00
        raw = f"{raw[:-2]}:{raw[-2:]}"
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def from_epoch_ms(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000.0, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def require_text(text: str, platform: str) -> None:
    """Refuse a look-up by text when there is no text to recognise the post by."""
    if not normalise(text):
        raise ReconcileUnsupported(
            f"{platform}: a post without text cannot be recognised among the channel's posts",
            platform=platform,
        )


def find_match(candidates: Iterable[Candidate], text: str, since: datetime) -> str | None:
    """The external id of the first candidate (platforms list newest first) that matches."""
    wanted = normalise(text)
    earliest = since - CLOCK_SKEW
    for candidate in candidates:
        if candidate.created_at is None or candidate.created_at < earliest:
            continue
        if normalise(candidate.text) == wanted:
            return candidate.external_id
    return None
