"""Building the connectors: one per platform, configured from the settings.

Apart from the package so that importing :mod:`herald.platforms` (for its content rules,
say) does not import every connector and aiohttp with them.
"""

from __future__ import annotations

from herald.config import Settings
from herald.domain import Platform
from herald.egress.policy import EgressPolicy
from herald.platforms.facebook import FacebookConnector
from herald.platforms.instagram import InstagramConnector
from herald.platforms.linkedin import LinkedInConnector
from herald.platforms.youtube import YouTubeConnector
from herald.types import Connector

__all__ = ["build_connectors"]


def build_connectors(settings: Settings) -> dict[Platform, Connector]:
    """One connector per platform, configured from ``settings``; no connection is opened
    until the first request, inside the running event loop."""
    pause = settings.engine.throttle_pause_s
    egress = EgressPolicy.from_settings(settings.egress)
    return {
        Platform.FACEBOOK: FacebookConnector(
            settings.facebook, throttle_pause_s=pause, egress=egress
        ),
        Platform.INSTAGRAM: InstagramConnector(
            settings.instagram, throttle_pause_s=pause, egress=egress
        ),
        Platform.LINKEDIN: LinkedInConnector(
            settings.linkedin, throttle_pause_s=pause, egress=egress
        ),
        Platform.YOUTUBE: YouTubeConnector(settings.youtube, throttle_pause_s=pause, egress=egress),
    }
