"""The platform API versions Herald speaks, and the day each stops being served.

Graph (Facebook, Instagram) names its version in the base URL (``.../v23.0``); LinkedIn in
the ``LinkedIn-Version`` header (``linkedin.api_version``); YouTube's Data API v3 has no
dated versions. Herald warns ahead of a retirement (:mod:`herald.engine.versions`), so the
dates are its own reading of the platforms' pages, kept apart from the simulator's
(:mod:`herald.simulator.versions`): one misreading cannot pass both sides.

- Graph: developers.facebook.com/docs/graph-api/changelog/versions (read 2026-12-07). A
  version Meta has not dated yet lives at least two years from its release
  (.../docs/graph-api/guides/versioning): that floor stands in for its date.
- LinkedIn: learn.microsoft.com/linkedin/marketing/integrations/migrations (read
  2026-12-07). A version the page does not date yet lives "a minimum of one year"
  (.../marketing/versioning): the first of its month a year on, the earliest it may go,
  stands in for its date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from types import MappingProxyType

from herald.config import Settings
from herald.domain import Platform

__all__ = ["GRAPH_RETIRES", "LINKEDIN_RETIRES", "graph_version", "retires_on", "spoken_versions"]

#: The day each Graph version's calls stop being served by it (Meta's "expiration date").
GRAPH_RETIRES: Mapping[str, date] = MappingProxyType(
    {
        "v19.0": date(2026, 5, 21),
        "v20.0": date(2026, 9, 24),
        "v21.0": date(2027, 1, 21),
        "v22.0": date(2027, 5, 20),
        "v23.0": date(2027, 10, 8),
        "v24.0": date(2028, 2, 18),
        "v25.0": date(2028, 7, 29),
        "v26.0": date(2028, 7, 29),  # not dated yet: released 2026-07-29, plus two years
    }
)

#: The sunset day of each LinkedIn version the migrations page dates.
LINKEDIN_RETIRES: Mapping[str, date] = MappingProxyType(
    {
        "202411": date(2025, 11, 17),
        "202510": date(2026, 10, 15),
        "202511": date(2026, 11, 16),
        "202601": date(2027, 1, 15),
        "202602": date(2027, 2, 15),
        "202603": date(2027, 3, 16),
    }
)

_GRAPH_SEGMENT = re.compile(r"/(v\d+\.\d+)$")
_LINKEDIN_VERSION = re.compile(r"^(\d{4})(\d{2})$")


def graph_version(base_url: str) -> str | None:
    """The version a Graph base URL names (``https://graph.facebook.com/v23.0``), if any."""
    match = _GRAPH_SEGMENT.search(base_url.rstrip("/"))
    return match[1] if match else None


def _linkedin_retires(version: str) -> date | None:
    if version in LINKEDIN_RETIRES:
        return LINKEDIN_RETIRES[version]
    match = _LINKEDIN_VERSION.match(version)
    if match is None or not 1 <= int(match[2]) <= 12:
        return None
    return date(int(match[1]) + 1, int(match[2]), 1)


def retires_on(platform: Platform, version: str) -> date | None:
    """The day ``version`` of ``platform``'s API stops being served; None if unknown."""
    if platform in (Platform.FACEBOOK, Platform.INSTAGRAM):
        return GRAPH_RETIRES.get(version)
    if platform is Platform.LINKEDIN:
        return _linkedin_retires(version)
    return None


def spoken_versions(settings: Settings) -> dict[Platform, str]:
    """The dated API version Herald speaks to each platform, as configured."""
    spoken = {
        Platform.FACEBOOK: graph_version(settings.facebook.base_url),
        Platform.INSTAGRAM: graph_version(settings.instagram.base_url),
        Platform.LINKEDIN: settings.linkedin.api_version,
    }
    return {platform: version for platform, version in spoken.items() if version is not None}
