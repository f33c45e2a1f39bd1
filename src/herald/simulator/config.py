"""The simulator's configuration: one JSON round-trippable object, built before start-up.

Limit numbers mirror Herald's settings (:meth:`SimulatorConfig.from_settings`) so that the
simulator refuses exactly what a correct Herald never sends. Everything else (latency, faults,
processing times, token lifetimes) is a knob for tests and benchmarks.
"""

from __future__ import annotations

import math
import random
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from herald.constants import GraphCode
from herald.domain import Platform

if TYPE_CHECKING:
    from herald.config import Settings

__all__ = [
    "NO_LISTING_LAG",
    "AudienceSpec",
    "CallFaults",
    "CallKind",
    "ContentKind",
    "DuplicateCheck",
    "EngagementSim",
    "FacebookSim",
    "FaultConfig",
    "InstagramSim",
    "LatencyModel",
    "LinkedInSim",
    "ListingLag",
    "Peak",
    "SimulatorConfig",
    "YouTubeSim",
    "ZoneShare",
]

# z-score of the 99th percentile of the standard normal distribution.
_Z99 = 2.326


class LatencyModel(BaseModel):
    """Lognormal service time: ``median_s`` and ``p99_s`` fix mu and sigma."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    median_s: float = Field(default=0.002, ge=0)
    p99_s: float = Field(default=0.01, ge=0)

    @model_validator(mode="after")
    def _p99_not_below_median(self) -> LatencyModel:
        if self.p99_s < self.median_s:
            raise ValueError("latency p99_s must be >= median_s")
        return self

    @property
    def sigma(self) -> float:
        if self.median_s <= 0 or self.p99_s <= self.median_s:
            return 0.0
        return math.log(self.p99_s / self.median_s) / _Z99

    def sample(self, rng: random.Random) -> float:
        if self.median_s <= 0:
            return 0.0
        sigma = self.sigma
        if sigma == 0.0:
            return self.median_s
        return self.median_s * math.exp(sigma * rng.gauss(0.0, 1.0))


class CallKind(StrEnum):
    """The kinds of platform call whose faults are set apart (:class:`FaultConfig`).

    A YouTube upload's status query is a STATUS call, not a READ: like a container poll, it
    asks how far one publish in progress got, where a READ is a look-up that decides a resend.
    """

    PUBLISH = "publish"  # creates the post: feed, photo, media_publish, posts, upload chunks
    READ = "read"  # listings and look-ups: published_posts, media, posts, playlistItems...
    CONTAINER = "container"  # Instagram container creation
    STATUS = "status"  # Instagram container status polls, YouTube upload status queries
    UPLOAD = "upload"  # YouTube upload-session start, LinkedIn image upload and its set-up
    TOKEN = "token"  # access-token refresh


class CallFaults(BaseModel):
    """The four exclusive outcomes of one fault draw, so they sum to at most 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_rate: float = Field(
        default=0.0, ge=0, le=1, description="transient 5xx, nothing committed"
    )
    timeout_rate: float = Field(default=0.0, ge=0, le=1, description="hang hang_s, then close")
    drop_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="close, no response; after committing what the call makes, if it makes a "
        "post, a container or an upload",
    )
    throttle_rate: float = Field(default=0.0, ge=0, le=1, description="platform-shaped throttle")

    @model_validator(mode="after")
    def _rates_fit_one_draw(self) -> Self:
        total = self.error_rate + self.timeout_rate + self.drop_rate + self.throttle_rate
        if total > 1.0 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")
        return self

    @property
    def active(self) -> bool:
        return (self.error_rate + self.timeout_rate + self.drop_rate + self.throttle_rate) > 0


class FaultConfig(CallFaults):
    """Injected misbehaviour of one platform. The top-level rates are drawn once per
    post-creating call (and per chunk of a YouTube upload: any of them can fail); ``calls``
    sets the rates of the other kinds of call, drawn once per call before it is handled: a
    ``drop`` commits only a container creation or an upload set-up (what they make exists,
    its answer lost), the other faults never commit. ``cut_rate`` is drawn apart, before a
    YouTube chunk's body arrives (see :mod:`.faults`)."""

    cut_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="YouTube: upload PUTs whose connection is cut part-way through the body "
        "(the session keeps the whole 256 KiB units that arrived)",
    )

    hang_s: float = Field(
        default=30.0, ge=0, description="how long a timeout fault holds the request"
    )
    timeout_commit_share: float = Field(
        default=0.5, ge=0, le=1, description="share of timeout faults that commit before hanging"
    )
    regain_minutes: int = Field(
        default=0,
        ge=0,
        description="Graph BUC estimated_time_to_regain_access on injected throttles",
    )
    retry_after_s: int | None = Field(
        default=None,
        ge=0,
        description="LinkedIn: Retry-After header on injected 429s (None: no header)",
    )
    graph_throttle_codes: tuple[int, ...] = Field(
        default=(
            GraphCode.RATE_LIMIT_EXCEEDED,
            GraphCode.PAGE_TOO_MANY_CALLS,
            GraphCode.TOO_MANY_CALLS,
        ),
        min_length=1,
        description="Graph codes an injected throttle picks from",
    )
    calls: dict[CallKind, CallFaults] = Field(
        default_factory=dict, description="rates of the calls that create no post, by kind"
    )

    @model_validator(mode="after")
    def _publish_set_at_the_top(self) -> Self:
        if CallKind.PUBLISH in self.calls:
            raise ValueError("post-creating calls take the top-level rates, not calls.publish")
        return self

    def for_call(self, kind: CallKind) -> CallFaults:
        return self if kind is CallKind.PUBLISH else self.calls.get(kind, _NO_CALL_FAULTS)

    @property
    def active(self) -> bool:
        return super().active or any(rates.active for rates in self.calls.values())

    @classmethod
    def everywhere(cls, rates: CallFaults, **story: Any) -> FaultConfig:
        """``rates`` on every kind of call, with the knobs of ``story`` (hang_s...)."""
        other = {kind: rates for kind in CallKind if kind is not CallKind.PUBLISH}
        return cls(**rates.model_dump(), calls=other, **story)


_NO_CALL_FAULTS = CallFaults()


class ListingLag(LatencyModel):
    """How long a new post takes to show in its channel's listings (Graph's and LinkedIn's
    are eventually consistent): the lognormal of :class:`LatencyModel`, cut at ``max_s``.
    The post exists at once (a duplicate check sees it); only listings lag."""

    median_s: float = Field(default=2.0, ge=0)
    p99_s: float = Field(default=20.0, ge=0)
    max_s: float = Field(default=60.0, ge=0, description="no post lags longer than this")

    def sample(self, rng: random.Random) -> float:
        return min(super().sample(rng), self.max_s)


#: Listings that show every post at once.
NO_LISTING_LAG = ListingLag(median_s=0.0, p99_s=0.0, max_s=0.0)


class DuplicateCheck(BaseModel):
    """A platform's refusal of a repeated post: usual, not certain, and forgetful."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    refuse_share: float = Field(
        default=1.0, ge=0, le=1, description="share of repeats the platform refuses"
    )
    memory_s: float = Field(
        default=86_400.0, gt=0, description="repeats of posts older than this go through"
    )


class FacebookSim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page_engaged_users: int = Field(default=1, gt=0, description="page limit: 4800 x this per 24 h")
    app_daily_active_users: int = Field(
        default=100, gt=0, description="app limit: 200 x this per 1 h"
    )
    reject_duplicates: bool = Field(default=True, description="identical repeat post -> code 506")
    # Graph's duplicate check is a heuristic: it usually refuses a repeat, and only for a
    # while (the fault profiles make it miss some: ``refuse_share`` below 1).
    duplicate_check: DuplicateCheck = DuplicateCheck(memory_s=6 * 3600.0)

    @property
    def page_calls_per_24h(self) -> int:
        return 4800 * self.page_engaged_users

    @property
    def app_calls_per_1h(self) -> int:
        return 200 * self.app_daily_active_users


class InstagramSim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    publishes_per_24h: int = Field(default=100, gt=0)
    containers_per_24h: int = Field(default=400, gt=0)
    calls_per_24h: int = Field(
        default=4800,
        gt=0,
        description="Business Use Case limit of one account: 4800 x its impressions per 24 h",
    )
    image_processing_s: float = Field(default=0.0, ge=0, description="IN_PROGRESS time of images")
    video_processing_s: float = Field(default=0.5, ge=0, description="IN_PROGRESS time of videos")
    container_ttl_s: float = Field(
        default=86_400.0, gt=0, description="unpublished -> EXPIRED after"
    )


class LinkedInSim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_posts_per_day: int = Field(default=150, gt=0)
    app_posts_per_day: int | None = Field(default=None, gt=0)
    upload_url_ttl_s: float = Field(default=3600.0, gt=0)
    reject_duplicates: bool = Field(
        default=True,
        description="same commentary by the same author within 24 h -> 422 DUPLICATE_POST",
    )
    duplicate_check: DuplicateCheck = DuplicateCheck(memory_s=86_400.0)


class YouTubeSim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quota_model: Literal["bucket", "units"] = "bucket"
    insert_calls_per_day: int = Field(default=100, gt=0)
    units_per_day: int = Field(default=10_000, gt=0)
    insert_cost_units: int = Field(default=1600, gt=0)
    uploads_per_channel_per_day: int | None = Field(default=None, gt=0)
    access_token_ttl_s: float = Field(default=3600.0, gt=0)
    session_ttl_s: float = Field(default=7 * 86_400.0, gt=0, description="resumable session life")


class ContentKind(StrEnum):
    """What a post carries, as far as its audience's response tells posts apart."""

    TEXT = "text"
    LINK = "link"
    IMAGE = "image"
    CAROUSEL = "carousel"
    VIDEO = "video"


class ZoneShare(BaseModel):
    """A share of an account's audience that lives in one time zone (IANA name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zone: str = "UTC"
    share: float = Field(default=1.0, gt=0)

    @field_validator("zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone!r}") from exc
        return zone


class Peak(BaseModel):
    """A daily bump of activity at a local hour (a von Mises bump on the day's circle)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hour: float = Field(ge=0, lt=24, description="local hour of day of the bump's top")
    width_hours: float = Field(default=2.5, gt=0, le=12, description="its standard deviation")
    weight: float = Field(default=1.0, gt=0)


class AudienceSpec(BaseModel):
    """One account's audience: the hidden truth its posts' engagement is drawn from
    (:mod:`.audience`). Pinned per account name in :class:`EngagementSim`, or drawn from the
    seed; every field has a default, so a pin names only what a test or a study cares about.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    zones: tuple[ZoneShare, ...] = Field(default=(ZoneShare(),), min_length=1)
    peaks: tuple[Peak, ...] = Field(default=(Peak(hour=12.0), Peak(hour=19.0)), min_length=1)
    floor: float = Field(default=0.15, ge=0, description="activity between the peaks")
    weekdays: tuple[float, ...] = Field(
        default=(1.0,) * 7, min_length=7, max_length=7, description="Monday..Sunday weights"
    )
    mean_engagement: float = Field(
        default=100.0,
        gt=0,
        description="interactions a post gets at full age, on the week's average hour, with "
        "the platform's reference content at the best length and no spacing penalty",
    )
    dispersion: float = Field(
        default=3.0, gt=0, description="gamma-Poisson shape k: variance = mu + mu^2 / k"
    )
    content: dict[ContentKind, float] = Field(
        default_factory=dict, description="multiplier by content kind (missing: 1)"
    )
    best_length: int = Field(default=120, ge=0, description="text length (chars) liked most")
    length_effect: float = Field(
        default=0.25, ge=0, lt=1, description="share of engagement lost far from best_length"
    )
    fast_share: float = Field(default=0.75, ge=0, le=1, description="interactions of the rush")
    fast_hours: float = Field(default=2.0, gt=0, description="mean delay within the rush")
    slow_hours: float = Field(default=24.0, gt=0, description="mean delay of the long tail")
    spacing_penalty: float = Field(
        default=0.4, ge=0, lt=1, description="share lost by a post right after the previous one"
    )
    spacing_hours: float = Field(default=4.0, gt=0, description="e-folding time of that loss")
    impressions_per_engagement: float = Field(default=20.0, ge=1)
    reach_share: float = Field(default=0.75, gt=0, le=1, description="reach / impressions")

    @field_validator("weekdays")
    @classmethod
    def _positive_days(cls, weekdays: tuple[float, ...]) -> tuple[float, ...]:
        if any(weight <= 0 for weight in weekdays):
            raise ValueError("weekday weights must be > 0")
        return weekdays


def _span(low: float, high: float) -> tuple[float, float]:
    return (low, high)


class EngagementSim(BaseModel):
    """How every account's audience is drawn from the seed, unless pinned by its name."""

    model_config = ConfigDict(extra="forbid")

    mean_engagement: dict[Platform, tuple[float, float]] = Field(
        default_factory=lambda: {
            Platform.FACEBOOK: _span(20.0, 200.0),
            Platform.INSTAGRAM: _span(40.0, 400.0),
            Platform.LINKEDIN: _span(10.0, 120.0),
            Platform.YOUTUBE: _span(15.0, 150.0),
        },
        description="log-uniform range of an account's mean interactions per post",
    )
    dispersion: tuple[float, float] = Field(default=(1.5, 6.0), description="range of k")
    zones: tuple[str, ...] = Field(
        default=(
            "America/New_York",
            "America/Chicago",
            "America/Los_Angeles",
            "America/Sao_Paulo",
            "Europe/London",
            "Europe/Berlin",
            "Africa/Lagos",
            "Asia/Kolkata",
            "Asia/Singapore",
            "Asia/Tokyo",
            "Australia/Sydney",
        ),
        min_length=1,
        description="the time zones audiences are drawn from",
    )
    mixed_share: float = Field(
        default=0.3, ge=0, le=1, description="share of accounts whose audience spans two zones"
    )
    audiences: dict[str, AudienceSpec] = Field(
        default_factory=dict, description="audiences pinned by account name"
    )

    @model_validator(mode="after")
    def _ranges_ordered(self) -> Self:
        spans = [self.dispersion, *self.mean_engagement.values()]
        if any(not 0 < low <= high for low, high in spans):
            raise ValueError("ranges must be (low, high) with 0 < low <= high")
        for zone in self.zones:
            ZoneShare(zone=zone)
        return self


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facebook: FacebookSim = Field(default_factory=FacebookSim)
    instagram: InstagramSim = Field(default_factory=InstagramSim)
    linkedin: LinkedInSim = Field(default_factory=LinkedInSim)
    youtube: YouTubeSim = Field(default_factory=YouTubeSim)
    latency: LatencyModel = Field(default_factory=LatencyModel)
    latency_by_platform: dict[Platform, LatencyModel] = Field(default_factory=dict)
    listing_lag: ListingLag = Field(default_factory=ListingLag)
    faults: dict[Platform, FaultConfig] = Field(default_factory=dict)
    engagement: EngagementSim = Field(default_factory=EngagementSim)
    seed: int = 0
    graph_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")
    request_log_limit: int = Field(
        default=1_000_000, gt=0, description="oldest entries are dropped"
    )

    def latency_for(self, platform: Platform) -> LatencyModel:
        return self.latency_by_platform.get(platform, self.latency)

    def faults_for(self, platform: Platform) -> FaultConfig:
        return self.faults.get(platform, _NO_FAULTS)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        latency: LatencyModel | None = None,
        faults: dict[Platform, FaultConfig] | None = None,
        seed: int = 0,
        **overrides: Any,
    ) -> SimulatorConfig:
        """Limits taken from Herald's settings, so both sides agree on every number."""
        fb, ig, li, yt = settings.facebook, settings.instagram, settings.linkedin, settings.youtube
        raw: dict[str, Any] = {
            "facebook": {
                "page_engaged_users": fb.page_engaged_users,
                "app_daily_active_users": fb.app_daily_active_users,
            },
            "instagram": {
                "publishes_per_24h": ig.publishes_per_24h,
                "containers_per_24h": ig.containers_per_24h,
            },
            "linkedin": {
                "member_posts_per_day": li.member_posts_per_day,
                "app_posts_per_day": li.app_posts_per_day,
            },
            "youtube": {
                "quota_model": yt.quota_model,
                "insert_calls_per_day": yt.insert_calls_per_day,
                "units_per_day": yt.units_per_day,
                "insert_cost_units": yt.insert_cost_units,
                "uploads_per_channel_per_day": yt.uploads_per_channel_per_day,
            },
            "seed": seed,
        }
        if latency is not None:
            raw["latency"] = latency
        if faults is not None:
            raw["faults"] = faults
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return cls.model_validate(raw)


_NO_FAULTS = FaultConfig()
