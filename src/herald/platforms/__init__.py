"""Platform connectors: one module per platform, each implementing :class:`herald.types.Connector`.

- :mod:`.http`: the HTTP boundary (one aiohttp session per connector, errors translated);
- :mod:`.graph`: what Facebook and Instagram share (Graph error envelope, usage headers);
- :mod:`.graph_listing`: looking a post up in a Graph edge listing, page by page;
- :mod:`.lookup`: recognising a delivery's post among a channel's posts over the whole
  look-up window, paging through the platform's listing;
- :mod:`.content`: what every connector does to content before sending;
- :mod:`.facebook`, :mod:`.instagram`, :mod:`.linkedin`, :mod:`.youtube` (with
  :mod:`.youtube_upload` and :mod:`.google_auth`): the platforms, wire format in
  docs/platforms.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from herald.domain import Content, Platform
from herald.platforms import facebook, instagram, linkedin, youtube
from herald.platforms.facebook import FacebookConnector
from herald.platforms.instagram import InstagramConnector
from herald.platforms.linkedin import LinkedInConnector
from herald.platforms.youtube import YouTubeConnector

if TYPE_CHECKING:
    from herald.config import Settings
    from herald.types import Connector

__all__ = [
    "VALIDATORS",
    "FacebookConnector",
    "InstagramConnector",
    "LinkedInConnector",
    "YouTubeConnector",
    "build_connectors",
]


#: Each platform's content rules (raising :class:`~herald.errors.ContentInvalid` with the
#: field), the very ones its connector applies again before sending. The API checks posts
#: with them before anything is stored.
VALIDATORS: Mapping[Platform, Callable[[Content], None]] = MappingProxyType(
    {
        Platform.FACEBOOK: facebook.validate,
        Platform.INSTAGRAM: instagram.validate,
        Platform.LINKEDIN: linkedin.validate,
        Platform.YOUTUBE: youtube.validate,
    }
)


def build_connectors(settings: Settings) -> dict[Platform, Connector]:
    """One connector per platform, configured from ``settings``; no connection is opened
    until the first request, inside the running event loop."""
    pause = settings.engine.throttle_pause_s
    return {
        Platform.FACEBOOK: FacebookConnector(settings.facebook, throttle_pause_s=pause),
        Platform.INSTAGRAM: InstagramConnector(settings.instagram, throttle_pause_s=pause),
        Platform.LINKEDIN: LinkedInConnector(settings.linkedin, throttle_pause_s=pause),
        Platform.YOUTUBE: YouTubeConnector(settings.youtube, throttle_pause_s=pause),
    }
