"""Recognising a delivery's post among a channel's recent posts (all connectors share it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from herald.config import FacebookSettings, InstagramSettings, LinkedInSettings
from herald.domain import Content, Media, MediaKind, Platform
from herald.errors import ReconcileUnsupported
from herald.platforms.content import with_link
from herald.platforms.facebook import FacebookConnector
from herald.platforms.instagram import InstagramConnector
from herald.platforms.linkedin import LinkedInConnector
from herald.platforms.lookup import (
    CLOCK_SKEW,
    Candidate,
    find_match,
    from_epoch_ms,
    normalise,
    parse_time,
)
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
