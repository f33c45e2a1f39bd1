"""Recognising the post a delivery may already have made among a channel's posts.

A platform post matches when its text equals, whitespace-normalised, the text the connector
would send for the delivery's content, and it was created at or after ``since`` minus
:data:`CLOCK_SKEW` (the platform's clock and ours need not agree): that instant starts the
look-up *window* (:func:`window_start`). A post without a readable creation time cannot be
shown to be recent, so it never matches. A delivery without text cannot be told apart from
the channel's other text-less posts: its look-up is refused (:class:`ReconcileUnsupported`)
and the engine leaves the decision to the user rather than guess.

A look-up is exhaustive over the window: :func:`scan` reads the platform's listing page by
page, newest first, until a page proves that everything after it is older than the window,
or the listing ends. A busy channel can push a post out of any fixed-size "recent" page
within seconds, and a wrong "absent" makes Herald send the post again. A listing that will
not end within :data:`MAX_PAGES` is a :class:`TransientPlatformError`, never "absent".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from herald.errors import ReconcileUnsupported, TransientPlatformError
from herald.types import PublishRequest

__all__ = [
    "CLOCK_SKEW",
    "MAX_PAGES",
    "Candidate",
    "Page",
    "find_match",
    "from_epoch_ms",
    "normalise",
    "oldest",
    "page_meter",
    "parse_time",
    "require_text",
    "scan",
    "window_start",
]

CLOCK_SKEW = timedelta(minutes=5)
#: Pages one look-up reads at most (100 posts a page on Graph and LinkedIn, 50 on YouTube).
#: A window holding more than that is answered with a transient error, not with "absent".
MAX_PAGES = 200

#: How a platform asks for the next page: a URL, an offset, a page token.
Cursor = TypeVar("Cursor", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One recent post as listed by the platform, reduced to what matching needs."""

    external_id: str
    text: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Page(Generic[Cursor]):
    """One page of a channel's listing, newest first.

    ``oldest`` is the smallest listing-order time on the page (creation time, or LinkedIn's
    last-modified time, which its listing is sorted by); ``None`` when none could be read.
    ``next`` asks for the following page; ``None`` when the platform says this is the last.
    """

    candidates: Sequence[Candidate]
    oldest: datetime | None
    next: Cursor | None


def oldest(times: Iterable[datetime | None]) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def window_start(since: datetime) -> datetime:
    """The oldest creation time a post of this delivery can have, as the platform sees it."""
    return since - CLOCK_SKEW


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
    earliest = window_start(since)
    for candidate in candidates:
        if candidate.created_at is None or candidate.created_at < earliest:
            continue
        if normalise(candidate.text) == wanted:
            return candidate.external_id
    return None


async def scan(
    fetch: Callable[[Cursor | None], Awaitable[Page[Cursor]]],
    text: str,
    since: datetime,
    platform: str,
    *,
    next_page: Callable[[], Awaitable[None]] | None = None,
) -> str | None:
    """Page through a listing with ``fetch`` (``None``: the first page) until the post is
    found, or the window is known to be covered; ``None`` only in the latter case.

    The listing is newest first, so a page whose ``oldest`` time lies before the window
    proves every later page does too. Without such a page the scan goes on to the listing's
    end: a page with no readable time cannot prove anything.
    """
    earliest = window_start(since)
    cursor: Cursor | None = None
    seen: set[Cursor] = set()
    for _ in range(MAX_PAGES):
        if cursor is not None and next_page is not None:
            await next_page()  # every page after the first counts against the limits
        page = await fetch(cursor)
        found = find_match(page.candidates, text, since)
        if found is not None:
            return found
        if page.next is None or (page.oldest is not None and page.oldest < earliest):
            return None
        if page.next in seen:
            raise TransientPlatformError(
                f"{platform}: the post listing pages in a circle", platform=platform
            )
        seen.add(page.next)
        cursor = page.next
    raise TransientPlatformError(
        f"{platform}: more than {MAX_PAGES} pages of posts in the look-up window",
        platform=platform,
    )


def page_meter(request: PublishRequest, usage: Mapping[str, int]) -> Callable[[], Awaitable[None]]:
    """The ``next_page`` hook of :func:`scan` for a request: reserve ``usage`` per page."""

    async def reserve() -> None:
        if request.meter is not None:
            await request.meter(usage)

    return reserve
