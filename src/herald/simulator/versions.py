"""Which API versions the simulated platforms serve, by the simulator's clock.

**Graph** (Facebook, Instagram). Every version has a release date and, once Meta names it, an
end of life, about two years later: two years after the next version's release
(developers.facebook.com/docs/graph-api/changelog/versions). A call naming a version past its
end of life is not refused: it "will be defaulted to the next oldest, usable version"
(developers.facebook.com/docs/graph-api/guides/versioning), so it is served by the oldest
live one. Every answer says which version made it in its ``facebook-api-version`` header
(developers.facebook.com/docs/graph-api/guides/debugging). A version not released yet is
not documented; the simulator answers it as an unknown path.

**LinkedIn**. Monthly versions ``YYYYMM``, each live from its month for at least a year,
until the sunset date LinkedIn publishes (learn.microsoft.com/linkedin/marketing/versioning
and .../integrations/migrations). Those published fall mid-month a year on; a version whose
date the table lacks sets on the 15th of its month a year later. Any other version is
answered ``426 NONEXISTENT_VERSION``, its name written out as a day (``20250401``), as
integrators quote LinkedIn's answer. LinkedIn's answers name no version.

The tables here are the simulator's own reading of those pages, apart from Herald's
(:mod:`herald.versions`), so that one misreading cannot pass both sides.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from herald.constants import GRAPH_VERSION_HEADER
from herald.simulator.clock import SimClock
from herald.simulator.graph import catch_all
from herald.simulator.pipeline import Reply

__all__ = [
    "GRAPH_VERSIONS",
    "LINKEDIN_SUNSETS",
    "GraphVersion",
    "graph_serving",
    "graph_versions",
    "linkedin_active",
    "linkedin_sunset",
]

_GRAPH_NAME = re.compile(r"^v(\d+)\.(\d+)$")
_PATH_VERSION = re.compile(r"^/(v\d+\.\d+)(?:/|$)")


@dataclass(frozen=True, slots=True)
class GraphVersion:
    name: str
    released: date
    ends: date | None  # None: Meta has not named it yet

    def live_on(self, day: date) -> bool:
        return self.released <= day and (self.ends is None or day < self.ends)


#: developers.facebook.com/docs/graph-api/changelog/versions, read 2026-12-07.
GRAPH_VERSIONS: tuple[GraphVersion, ...] = (
    GraphVersion("v17.0", date(2023, 5, 23), date(2025, 9, 12)),
    GraphVersion("v18.0", date(2023, 9, 12), date(2026, 1, 26)),
    GraphVersion("v19.0", date(2024, 1, 23), date(2026, 5, 21)),
    GraphVersion("v20.0", date(2024, 5, 21), date(2026, 9, 24)),
    GraphVersion("v21.0", date(2024, 10, 2), date(2027, 1, 21)),
    GraphVersion("v22.0", date(2025, 1, 21), date(2027, 5, 20)),
    GraphVersion("v23.0", date(2025, 5, 29), date(2027, 10, 8)),
    GraphVersion("v24.0", date(2025, 10, 8), date(2028, 2, 18)),
    GraphVersion("v25.0", date(2026, 2, 18), date(2028, 7, 29)),
    GraphVersion("v26.0", date(2026, 7, 29), None),
)

#: learn.microsoft.com/linkedin/marketing/integrations/migrations, read 2026-12-07.
LINKEDIN_SUNSETS: dict[str, date] = {
    "202407": date(2025, 7, 22),
    "202408": date(2025, 8, 18),
    "202409": date(2025, 9, 15),
    "202410": date(2025, 10, 15),
    "202411": date(2025, 11, 17),
    "202510": date(2026, 10, 15),
    "202511": date(2026, 11, 16),
    "202601": date(2027, 1, 15),
    "202602": date(2027, 2, 15),
    "202603": date(2027, 3, 16),
}


def _number(name: str) -> tuple[int, int] | None:
    match = _GRAPH_NAME.match(name)
    return None if match is None else (int(match[1]), int(match[2]))


def graph_serving(
    asked: str, day: date, versions: Sequence[GraphVersion] = GRAPH_VERSIONS
) -> str | None:
    """The version that answers a call naming ``asked`` on ``day``: itself while live, the
    oldest live one once it is past its end (or older than the table); None if it is not
    released yet."""
    wanted = _number(asked)
    if wanted is None:
        return None
    known = {v.name: v for v in versions}
    version = known.get(asked)
    if version is not None and version.live_on(day):
        return asked
    live = [v for v in versions if v.live_on(day)]
    newest = max((_number(v.name) or (0, 0) for v in versions if v.released <= day), default=None)
    if not live or newest is None or wanted > newest:
        return None  # not released (or past every version the table knows)
    return min(live, key=lambda v: v.released).name


def _today(clock: SimClock) -> date:
    return datetime.fromtimestamp(clock.now(), UTC).date()


def graph_versions(clock: SimClock, default: str) -> Middleware:
    """Serve each Graph call by the version its path names (``default``, the app's version,
    when it names none) and say so in the ``facebook-api-version`` header."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = _PATH_VERSION.match(request.path)
        served = graph_serving(match[1] if match else default, _today(clock))
        if served is None:
            return await catch_all(request)
        try:
            response = await handler(request)
        except Reply as reply:
            reply.response.headers[GRAPH_VERSION_HEADER] = served
            raise
        response.headers[GRAPH_VERSION_HEADER] = served
        return response

    return middleware


def linkedin_sunset(version: str) -> date:
    """The day ``version`` (``YYYYMM``) stops being served."""
    year, month = int(version[:4]), int(version[4:])
    return LINKEDIN_SUNSETS.get(version) or date(year + 1, month, 15)


def linkedin_active(version: str, day: date) -> bool:
    """Released (its month has come) and not sunset on ``day``."""
    month = int(version[4:])
    if not 1 <= month <= 12:
        return False
    released = date(int(version[:4]), month, 1)
    return released <= day < linkedin_sunset(version)
