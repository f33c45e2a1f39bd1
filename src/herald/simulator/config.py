"""The simulator's configuration: one JSON round-trippable object, built before start-up.

Limit numbers mirror Herald's settings (:meth:`SimulatorConfig.from_settings`) so that the
simulator refuses exactly what a correct Herald never sends. Everything else (latency, faults,
processing times, token lifetimes) is a knob for tests and benchmarks.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from herald.constants import GraphCode
from herald.domain import Platform

if TYPE_CHECKING:
    from herald.config import Settings

__all__ = [
    "FacebookSim",
    "FaultConfig",
    "InstagramSim",
    "LatencyModel",
    "LinkedInSim",
    "SimulatorConfig",
    "YouTubeSim",
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


class FaultConfig(BaseModel):
    """Injected misbehaviour of one platform, drawn once per post-creating call (and per
    chunk of a YouTube upload: any of them can fail).

    The four rates ``error``, ``timeout``, ``drop`` and ``throttle`` are exclusive outcomes of
    one draw, so they must sum to at most 1. ``cut_rate`` is drawn apart, before a YouTube
    chunk's body arrives (see :mod:`.faults`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_rate: float = Field(
        default=0.0, ge=0, le=1, description="transient 5xx, nothing committed"
    )
    timeout_rate: float = Field(default=0.0, ge=0, le=1, description="hang hang_s, then close")
    drop_rate: float = Field(default=0.0, ge=0, le=1, description="commit, then close, no response")
    throttle_rate: float = Field(default=0.0, ge=0, le=1, description="platform-shaped throttle")
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

    @model_validator(mode="after")
    def _rates_fit_one_draw(self) -> FaultConfig:
        total = self.error_rate + self.timeout_rate + self.drop_rate + self.throttle_rate
        if total > 1.0 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")
        return self

    @property
    def active(self) -> bool:
        return (self.error_rate + self.timeout_rate + self.drop_rate + self.throttle_rate) > 0


class FacebookSim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page_engaged_users: int = Field(default=1, gt=0, description="page limit: 4800 x this per 24 h")
    app_daily_active_users: int = Field(
        default=100, gt=0, description="app limit: 200 x this per 1 h"
    )
    reject_duplicates: bool = Field(default=True, description="identical repeat post -> code 506")

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
    image_processing_s: float = Field(default=0.0, ge=0, description="IN_PROGRESS time of images")
    video_processing_s: float = Field(default=0.5, ge=0, description="IN_PROGRESS time of videos")
    container_ttl_s: float = Field(
        default=86_400.0, gt=0, description="unpublished -> EXPIRED after"
    )


class LinkedInSim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_posts_per_day: int = Field(default=150, gt=0)
    app_posts_per_day: int | None = Field(default=None, gt=0)
    oldest_version: str = Field(
        default="202401", pattern=r"^\d{6}$", description="older LinkedIn-Version -> 426"
    )
    upload_url_ttl_s: float = Field(default=3600.0, gt=0)
    reject_duplicates: bool = Field(
        default=True,
        description="same commentary by the same author within 24 h -> 422 DUPLICATE_POST",
    )


class YouTubeSim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quota_model: Literal["bucket", "units"] = "bucket"
    insert_calls_per_day: int = Field(default=100, gt=0)
    units_per_day: int = Field(default=10_000, gt=0)
    insert_cost_units: int = Field(default=1600, gt=0)
    uploads_per_channel_per_day: int | None = Field(default=None, gt=0)
    access_token_ttl_s: float = Field(default=3600.0, gt=0)
    session_ttl_s: float = Field(default=7 * 86_400.0, gt=0, description="resumable session life")


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    facebook: FacebookSim = Field(default_factory=FacebookSim)
    instagram: InstagramSim = Field(default_factory=InstagramSim)
    linkedin: LinkedInSim = Field(default_factory=LinkedInSim)
    youtube: YouTubeSim = Field(default_factory=YouTubeSim)
    latency: LatencyModel = Field(default_factory=LatencyModel)
    latency_by_platform: dict[Platform, LatencyModel] = Field(default_factory=dict)
    faults: dict[Platform, FaultConfig] = Field(default_factory=dict)
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
