"""Which caps a request takes a slot of, and how their keys are named.

A request holds one slot on each cap configured for its platform
(:class:`~herald.config.PlatformSettings`):

- ``channel_concurrency``: requests in flight at once on one channel (a Page, an account);
- ``app_concurrency``: on the app the channel publishes through. Herald runs one app (one set
  of app credentials) per platform, as the app-scoped limit rules count it
  (:func:`herald.limits.rules.limit_key`): its key names the same subject, ``app``;
- ``cluster_concurrency``: on the whole platform, across every engine.

The per-process cap (``concurrency``) is not here: it is the lane's own semaphore
(:mod:`herald.engine.lane`), free of any round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from herald.domain import Platform
from herald.types import CapClaim

if TYPE_CHECKING:
    from herald.config import Settings

__all__ = ["CapLimits", "CapScope", "cap_claims", "cap_key", "cap_limits"]

#: Who a cap wider than one process bounds.
CapScope = Literal["channel", "app", "cluster"]


@dataclass(frozen=True, slots=True)
class CapLimits:
    """A platform's caps wider than one process; None: no cap of that scope."""

    channel: int | None = None
    app: int | None = None
    cluster: int | None = None

    @property
    def any(self) -> bool:
        return any(limit is not None for limit in (self.channel, self.app, self.cluster))


def cap_limits(settings: Settings) -> dict[Platform, CapLimits]:
    """Each platform's caps, from its section of the configuration."""
    limits = {}
    for platform in Platform:
        section = settings.platform(platform)
        limits[platform] = CapLimits(
            section.channel_concurrency, section.app_concurrency, section.cluster_concurrency
        )
    return limits


def cap_key(platform: Platform, scope: CapScope, channel_external_id: str) -> str:
    subject = {"channel": channel_external_id, "app": "app", "cluster": "all"}[scope]
    return f"{platform.value}:{scope}:{subject}"


def cap_claims(platform: Platform, limits: CapLimits, channel_external_id: str) -> list[CapClaim]:
    """The slots one request on ``channel_external_id`` takes: one per configured cap."""
    scoped: tuple[tuple[CapScope, int | None], ...] = (
        ("channel", limits.channel),
        ("app", limits.app),
        ("cluster", limits.cluster),
    )
    return [
        CapClaim(cap_key(platform, scope, channel_external_id), limit)
        for scope, limit in scoped
        if limit is not None
    ]
