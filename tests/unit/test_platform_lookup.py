"""Recognising a delivery's post among a channel's posts, and paging through the listing
until the look-up window is covered (all connectors share both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald.config import FacebookSettings, InstagramSettings, LinkedInSettings
from herald.domain import Content, Media, MediaKind, Platform
from herald.errors import ReconcileUnsupported, TransientPlatformError
from herald.platforms.facebook import FacebookConnector
from herald.platforms.instagram import InstagramConnector
from herald.platforms.linkedin import LinkedInConnector
from herald.platforms.lookup import (
    CLOCK_SKEW,
    MAX_PAGES,
    Candidate,
    Page,
    find_match,
    from_epoch_ms,
    normalise,
    parse_time,
    scan,
    window_start,
)
from herald.platforms.rules import with_link
from tests.unit.test_platform_fakes import NOW, make_request

T = datetime(2026, 11, 28, 17, 8, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-11-28T17:08:01+0000",
        "2026-11-28T17:08:01Z",
        "2026-11-28T17:08:01.000Z",
        "2026-11-28T18:08:01+01:00",
        "2026-11-28T09:08:01-0800",
    ],
)
def test_parse_time(raw: str) -> None:
    assert parse_time(raw) == T


@pytest.mark.parametrize("raw", [None, "", "yesterday", "2026-11-28T17:08:01", 17])
def test_parse_time_refuses_what_is_not_an_instant(raw: object) -> None:
    assert parse_time(raw) is None


def test_epoch_ms() -> None:
    assert from_epoch_ms(int(T.timestamp() * 1000)) == T
    assert from_epoch_ms("1") is None
    assert from_epoch_ms(True) is None


def test_normalise_and_link() -> None:
    assert normalise("  a \n\t b  ") == "a b"
    assert with_link("text", "https://x") == "text\n\nhttps://x"
    assert with_link("", "https://x") == "https://x"
    assert with_link("text", None) == "text"


def test_window_is_since_minus_clock_skew() -> None:
    since = NOW
    edge = Candidate("edge", "hello", since - CLOCK_SKEW)
    older = Candidate("older", "hello", since - CLOCK_SKEW - timedelta(seconds=1))
    untimed = Candidate("untimed", "hello", None)
    assert find_match([older, untimed, edge], "hello", since) == "edge"
    assert find_match([older, untimed], "hello", since) is None
    newest_first = [Candidate("new", "hello", since), Candidate("old", "hello", since)]
    assert find_match(newest_first, " hello ", since) == "new"


class Listing:
    """A scripted listing: page ``n`` answers ``pages[n]``; records the cursors asked for."""

    def __init__(self, *pages: Page[int]) -> None:
        self.pages = pages
        self.asked: list[int | None] = []

    async def __call__(self, cursor: int | None) -> Page[int]:
        self.asked.append(cursor)
        return self.pages[cursor or 0]


def page(*posts: Candidate, following: int | None) -> Page[int]:
    times = [p.created_at for p in posts if p.created_at is not None]
    return Page(posts, min(times) if times else None, following)


def post(name: str, minutes_ago: float, text: str = "other") -> Candidate:
    return Candidate(name, text, NOW - timedelta(minutes=minutes_ago))


async def test_scan_pages_until_it_finds_the_post() -> None:
    listing = Listing(
        page(post("a", 0), post("b", 1), following=1),
        page(post("c", 2), post("d", 3, "hello"), following=2),
        page(post("e", 4), following=None),
    )
    assert await scan(listing, "hello", NOW - timedelta(minutes=10), "x") == "d"
    assert listing.asked == [None, 1]  # found on page 2: page 3 is never asked for


async def test_scan_stops_at_a_page_older_than_the_window() -> None:
    since = NOW - timedelta(minutes=10)  # window starts at since - CLOCK_SKEW: 15 min ago
    listing = Listing(
        page(post("a", 1), post("b", 14), following=1),
        page(post("c", 14.5), post("d", 16), following=2),  # reaches back before the window
        page(post("e", 17, "hello"), following=None),
    )
    assert window_start(since) == NOW - timedelta(minutes=15)
    assert await scan(listing, "hello", since, "x") is None
    assert listing.asked == [None, 1]


async def test_scan_reads_untimed_pages_to_the_end_of_the_listing() -> None:
    untimed = Candidate("u", "other", None)
    listing = Listing(
        Page([untimed], None, 1), Page([untimed], None, 2), Page([untimed], None, None)
    )
    assert await scan(listing, "hello", NOW, "x") is None
    assert listing.asked == [None, 1, 2]


async def test_scan_never_says_absent_when_the_listing_will_not_end() -> None:
    asked: list[int | None] = []

    async def endless(cursor: int | None) -> Page[int]:
        asked.append(cursor)
        return page(post(f"p{cursor}", 0), following=(cursor or 0) + 1)

    with pytest.raises(TransientPlatformError, match=f"more than {MAX_PAGES} pages"):
        await scan(endless, "hello", NOW - timedelta(hours=1), "facebook")
    assert len(asked) == MAX_PAGES


async def test_scan_refuses_a_listing_that_pages_in_a_circle() -> None:
    listing = Listing(page(post("a", 0), following=1), page(post("b", 1), following=1))
    with pytest.raises(TransientPlatformError, match="circle"):
        await scan(listing, "hello", NOW - timedelta(hours=1), "linkedin")
    assert listing.asked == [None, 1]  # the repeated cursor is never asked for again


IMAGE = Media("https://cdn.example/a.jpg", MediaKind.IMAGE)


@pytest.mark.parametrize(
    ("connector", "platform", "content"),
    [
        (
            FacebookConnector(FacebookSettings(base_url="http://127.0.0.1:9"), throttle_pause_s=1),
            Platform.FACEBOOK,
            Content(media=(IMAGE,)),
        ),
        (
            InstagramConnector(
                InstagramSettings(base_url="http://127.0.0.1:9"), throttle_pause_s=1
            ),
            Platform.INSTAGRAM,
            Content(media=(IMAGE,)),
        ),
        (
            LinkedInConnector(LinkedInSettings(base_url="http://127.0.0.1:9"), throttle_pause_s=1),
            Platform.LINKEDIN,
            Content(media=(IMAGE,)),
        ),
    ],
)
async def test_a_post_without_text_cannot_be_looked_up(
    connector: FacebookConnector | InstagramConnector | LinkedInConnector,
    platform: Platform,
    content: Content,
) -> None:
    # Refused before any request (nothing listens on port 9): the user decides, never a guess.
    with pytest.raises(ReconcileUnsupported):
        await connector.find(make_request(platform, content))
    await connector.aclose()
