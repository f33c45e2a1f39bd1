"""Building the connectors: one per platform, configured from the settings.

Apart from the package so that importing :mod:`herald.platforms` (for its content rules,
say) does not import every connector and aiohttp with them.
"""

from __future__ import annotations

from typing import Any

from herald.config import Settings
from herald.domain import Platform
from herald.egress.policy import EgressPolicy
from herald.platforms.facebook import FacebookConnector
from herald.platforms.instagram import InstagramConnector
from herald.platforms.linkedin import LinkedInConnector
from herald.platforms.youtube import YouTubeConnector
from herald.types import Connector, VersionObserver

__all__ = ["build_connectors"]


def build_connectors(
    settings: Settings, *, versions: VersionObserver | None = None
) -> dict[Platform, Connector]:
    """One connector per platform, configured from ``settings``; no connection is opened
    until the first request, inside the running event loop. ``versions`` is told which API
    version answered (:mod:`herald.engine.versions`)."""
    common: dict[str, Any] = {
        "throttle_pause_s": settings.engine.throttle_pause_s,
        "egress": EgressPolicy.from_settings(settings.egress),
        "versions": versions,
    }
    return {
        Platform.FACEBOOK: FacebookConnector(settings.facebook, **common),
        Platform.INSTAGRAM: InstagramConnector(settings.instagram, **common),
        Platform.LINKEDIN: LinkedInConnector(settings.linkedin, **common),
        Platform.YOUTUBE: YouTubeConnector(settings.youtube, **common),
    }
