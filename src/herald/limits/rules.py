"""Limit rules: what each platform allows, in a form a limiter can enforce exactly.

Platform limits come in two shapes, and neither is a token bucket:

- a **rolling window** ("100 posts per rolling 24 h"): at most ``limit`` units in *any*
  window of ``window_s`` seconds. A token bucket of the same size admits up to
  ``2 x limit - 1`` in one rolling window, so Herald keeps a sliding log instead;
- a **calendar quota** ("10,000 units a day, reset at midnight Pacific Time"): at most
  ``limit`` units per calendar day in a time zone.

A :class:`Pacing` rule (GCRA) smooths bursts where an operator wants a steady rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from herald.domain import Platform
from herald.errors import LimitScope

if TYPE_CHECKING:
    from herald.config import Settings

__all__ = [
    "CalendarQuota",
    "LimitClaim",
    "LimitRule",
    "Pacing",
    "RollingWindow",
    "claims_for",
    "default_rules",
    "limit_key",
    "outage_key",
    "pause_key",
]


@dataclass(frozen=True, slots=True)
class RollingWindow:
    limit: int
    window_s: float
    margin_s: float = 0.0  # extra time a grant is remembered: covers send delay and clock skew


@dataclass(frozen=True, slots=True)
class CalendarQuota:
    limit: int
    timezone: str = "UTC"  # the day resets at midnight in this zone
    margin_s: float = 0.0  # grants this close to midnight count against both days


@dataclass(frozen=True, slots=True)
class Pacing:
    """GCRA: a steady ``rate_per_s`` with bursts of up to ``burst`` requests."""

    rate_per_s: float
    burst: int = 1


Algorithm = RollingWindow | CalendarQuota | Pacing


@dataclass(frozen=True, slots=True)
class LimitRule:
    name: str  # unique per platform, e.g. "page_calls"
    meter: str  # which usage it counts, e.g. "calls"
    scope: LimitScope
    algorithm: Algorithm
    # The platform counts only requests that succeed (Instagram's publishing quota): a
    # request that definitely failed gives its units back.
    refundable: bool = False


@dataclass(frozen=True, slots=True)
class LimitClaim:
    """``cost`` units of ``rule`` on ``key`` (one key per rule and channel, or per app)."""

    key: str
    rule: LimitRule
    cost: int


def limit_key(platform: Platform, rule: LimitRule, channel_external_id: str) -> str:
    subject = channel_external_id if rule.scope == "channel" else "app"
    return f"{platform.value}:{rule.name}:{subject}"


def pause_key(platform: Platform, scope: LimitScope, channel_external_id: str) -> str:
    """The key a platform's own throttling signal blocks."""
    subject = channel_external_id if scope == "channel" else "app"
    return f"{platform.value}:pause:{subject}"


def outage_key(platform: Platform) -> str:
    """The key an outage of the platform blocks: every request to it, on every channel."""
    return f"{platform.value}:pause:outage"


def claims_for(
    platform: Platform,
    rules: tuple[LimitRule, ...],
    channel_external_id: str,
    usage: Mapping[str, int],
) -> list[LimitClaim]:
    return [
        LimitClaim(limit_key(platform, rule, channel_external_id), rule, usage[rule.meter])
        for rule in rules
        if usage.get(rule.meter, 0) > 0
    ]


_DAY_S = 86_400.0
_HOUR_S = 3_600.0
PACIFIC = "America/Los_Angeles"


def default_rules(settings: Settings) -> dict[Platform, tuple[LimitRule, ...]]:
    """The limits of docs/platforms.md, sized by the configuration."""
    margin = settings.engine.limit_margin_s
    fb, ig, li, yt = settings.facebook, settings.instagram, settings.linkedin, settings.youtube
    facebook = (
        LimitRule(
            "page_calls",
            "calls",
            "channel",
            RollingWindow(4800 * fb.page_engaged_users, _DAY_S, margin),
        ),
        LimitRule(
            "app_calls",
            "calls",
            "app",
            RollingWindow(200 * fb.app_daily_active_users, _HOUR_S, margin),
        ),
    )
    # The publish quota is counted when media_publish arrives, which follows container
    # creation and processing: the margin covers the poll timeout too.
    ig_margin = margin + ig.poll_timeout_s
    instagram = (
        LimitRule(
            "publishes",
            "publishes",
            "channel",
            RollingWindow(ig.publishes_per_24h, _DAY_S, ig_margin),
            refundable=True,
        ),
        LimitRule(
            "containers",
            "containers",
            "channel",
            RollingWindow(ig.containers_per_24h, _DAY_S, margin),
        ),
    )
    linkedin: tuple[LimitRule, ...] = (
        LimitRule(
            "member_posts",
            "posts",
            "channel",
            CalendarQuota(li.member_posts_per_day, "UTC", margin),
        ),
    )
    if li.app_posts_per_day is not None:
        linkedin += (
            LimitRule(
                "app_posts", "posts", "app", CalendarQuota(li.app_posts_per_day, "UTC", margin)
            ),
        )
    youtube: tuple[LimitRule, ...] = (
        LimitRule("units", "units", "app", CalendarQuota(yt.units_per_day, PACIFIC, margin)),
    )
    if yt.quota_model == "bucket":
        youtube += (
            LimitRule(
                "insert_calls",
                "insert_calls",
                "app",
                CalendarQuota(yt.insert_calls_per_day, PACIFIC, margin),
            ),
        )
    if yt.uploads_per_channel_per_day is not None:
        youtube += (
            LimitRule(
                "channel_uploads",
                "uploads",
                "channel",
                CalendarQuota(yt.uploads_per_channel_per_day, PACIFIC, margin),
            ),
        )
    return {
        Platform.FACEBOOK: facebook,
        Platform.INSTAGRAM: instagram,
        Platform.LINKEDIN: linkedin,
        Platform.YOUTUBE: youtube,
    }
