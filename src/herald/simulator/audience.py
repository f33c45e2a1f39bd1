"""An account's audience: the hidden ground truth of what its posts are worth, and when.

Activity follows a daily cycle (a floor plus von Mises bumps at local hours) times a weekly
one (a weight per weekday), in each of the audience's time zones, mixed by their shares and
normalised to a mean of 1 over the week. A post's interactions arrive after it with delays
from a two-part law: a rush (``fast_share`` of them, mean ``fast_hours``) and a long tail
(mean ``slow_hours``). So what a post is worth depends on the activity *while* those
interactions arrive, not only at the minute it was made: posting an hour before the peak
can beat posting at its top.

The expected interactions of a post at full age are::

    mean_engagement x timing(at) x content(kind, length) x spacing(gap since previous post)

and at age ``a`` that times :meth:`Audience.accumulated` (``a``), which rises from 0 and
saturates (most within hours, almost all by 7 days). The noise around it lives in
:mod:`.engagement`. Audiences are drawn per account from the seed (:func:`draw_audience`)
unless the configuration pins one by the account's name.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from herald.domain import Platform
from herald.simulator.config import AudienceSpec, ContentKind, EngagementSim, Peak, ZoneShare

__all__ = ["HOURS_PER_WEEK", "REFERENCE_CONTENT", "Audience", "draw_audience"]

HOURS_PER_WEEK = 168
_HOUR_S = 3600.0
_DAY_SAMPLES = 96  # points of the day the daily cycle's mean is taken over
_KERNEL_POINTS = 12  # quantiles of each delay law the timing average is taken over

#: The content a platform's hour-of-week truth is quoted for.
REFERENCE_CONTENT: dict[Platform, ContentKind] = {
    Platform.FACEBOOK: ContentKind.IMAGE,
    Platform.INSTAGRAM: ContentKind.IMAGE,
    Platform.LINKEDIN: ContentKind.TEXT,
    Platform.YOUTUBE: ContentKind.VIDEO,
}


class Audience:
    """The ground truth of one account, computed from its :class:`AudienceSpec`."""

    def __init__(self, spec: AudienceSpec, platform: Platform) -> None:
        self.spec = spec
        self.platform = platform
        total = sum(z.share for z in spec.zones)
        self._zones = [(ZoneInfo(z.zone), z.share / total) for z in spec.zones]
        self._bumps = [(p.hour, _concentration(p), p.weight) for p in spec.peaks]
        self._day_norm = sum(self._daily(24.0 * i / _DAY_SAMPLES) for i in range(_DAY_SAMPLES))
        self._day_norm /= _DAY_SAMPLES
        week_mean = sum(spec.weekdays) / 7
        self._weekdays = [w / week_mean for w in spec.weekdays]
        self._fast = _quantiles(spec.fast_hours)
        self._slow = _quantiles(spec.slow_hours)

    @property
    def zone(self) -> ZoneInfo:
        """The zone of the largest share of the audience: the one hours of week are in."""
        return max(self._zones, key=lambda item: item[1])[0]

    # -- the cycles -------------------------------------------------------------------------
    def activity(self, at: float) -> float:
        """How active the audience is at Unix time ``at``: 1 on the week's average."""
        total = 0.0
        for zone, share in self._zones:
            local = datetime.fromtimestamp(at, zone)
            hour = local.hour + local.minute / 60 + local.second / 3600
            total += share * self._daily(hour) / self._day_norm * self._weekdays[local.weekday()]
        return total

    def timing(self, at: float) -> float:
        """The activity a post made at ``at`` meets while its interactions arrive."""
        spec = self.spec
        fast = sum(self.activity(at + d * _HOUR_S) for d in self._fast) / len(self._fast)
        slow = sum(self.activity(at + d * _HOUR_S) for d in self._slow) / len(self._slow)
        return spec.fast_share * fast + (1 - spec.fast_share) * slow

    # -- the effects ------------------------------------------------------------------------
    def content_effect(self, kind: ContentKind, length: int) -> float:
        spec = self.spec
        distance = math.log((length + 10) / (spec.best_length + 10))
        fit = math.exp(-(distance**2) / 2)
        return spec.content.get(kind, 1.0) * (1 - spec.length_effect * (1 - fit))

    def spacing_effect(self, gap_s: float | None) -> float:
        """What is left of a post made ``gap_s`` after the account's previous one."""
        if gap_s is None:
            return 1.0
        spec = self.spec
        return 1 - spec.spacing_penalty * math.exp(-max(gap_s, 0.0) / _HOUR_S / spec.spacing_hours)

    def accumulated(self, age_s: float) -> float:
        """The share of a post's interactions that has arrived at ``age_s``."""
        if age_s <= 0:
            return 0.0
        spec, hours = self.spec, age_s / _HOUR_S
        fast = 1 - math.exp(-hours / spec.fast_hours)
        slow = 1 - math.exp(-hours / spec.slow_hours)
        return spec.fast_share * fast + (1 - spec.fast_share) * slow

    def expected(
        self,
        at: float,
        kind: ContentKind | None = None,
        length: int | None = None,
        gap_s: float | None = None,
    ) -> float:
        """Expected interactions at full age of a post made at ``at`` (reference content at
        the best length, and no earlier post, unless given)."""
        spec = self.spec
        content = self.content_effect(
            kind or REFERENCE_CONTENT[self.platform],
            spec.best_length if length is None else length,
        )
        return spec.mean_engagement * self.timing(at) * content * self.spacing_effect(gap_s)

    def hour_of_week(
        self, week_of: float, kind: ContentKind | None = None, length: int | None = None
    ) -> list[float]:
        """Expected interactions of a post made at the start of each hour of the week that
        holds ``week_of``, in :attr:`zone`: index 0 is Monday 00:00, 167 Sunday 23:00."""
        zone = self.zone
        day = datetime.fromtimestamp(week_of, zone).date()
        monday = day - timedelta(days=day.weekday())
        out: list[float] = []
        for hour in range(HOURS_PER_WEEK):
            date = monday + timedelta(days=hour // 24)
            local = datetime(date.year, date.month, date.day, hour % 24, tzinfo=zone)
            out.append(self.expected(local.astimezone(UTC).timestamp(), kind, length))
        return out

    # -- internals --------------------------------------------------------------------------
    def _daily(self, hour: float) -> float:
        total = self.spec.floor
        for top, kappa, weight in self._bumps:
            angle = 2 * math.pi * (hour - top) / 24
            total += weight * math.exp(kappa * (math.cos(angle) - 1))
        return total


def _concentration(peak: Peak) -> float:
    """The von Mises kappa whose spread matches ``width_hours`` (1 / sigma^2, in radians)."""
    sigma = 2 * math.pi * peak.width_hours / 24
    return 1 / sigma**2


def _quantiles(mean_hours: float) -> list[float]:
    """Mid-quantiles of an exponential delay: an even-weight stand-in for its density."""
    return [-mean_hours * math.log(1 - (i + 0.5) / _KERNEL_POINTS) for i in range(_KERNEL_POINTS)]


# -- drawing an audience from the seed ---------------------------------------------------------

#: (peak hour centres, weekday weights Mon..Sun) that flavour each platform's audiences.
_HABITS: dict[Platform, tuple[tuple[float, ...], tuple[float, ...]]] = {
    Platform.FACEBOOK: ((9.0, 13.0, 20.0), (1.0, 1.0, 1.05, 1.0, 1.0, 0.9, 0.85)),
    Platform.INSTAGRAM: ((7.5, 12.5, 20.5), (1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.05)),
    Platform.LINKEDIN: ((8.0, 12.0, 17.5), (1.15, 1.25, 1.25, 1.2, 1.0, 0.35, 0.3)),
    Platform.YOUTUBE: ((16.0, 19.5, 22.0), (0.9, 0.9, 0.9, 0.95, 1.05, 1.3, 1.3)),
}
#: Content multipliers around which each account's own are drawn.
_CONTENT: dict[Platform, dict[ContentKind, float]] = {
    Platform.FACEBOOK: {
        ContentKind.TEXT: 0.7,
        ContentKind.LINK: 0.8,
        ContentKind.IMAGE: 1.0,
        ContentKind.CAROUSEL: 1.1,
        ContentKind.VIDEO: 1.3,
    },
    Platform.INSTAGRAM: {
        ContentKind.IMAGE: 1.0,
        ContentKind.CAROUSEL: 1.25,
        ContentKind.VIDEO: 1.5,
    },
    Platform.LINKEDIN: {
        ContentKind.TEXT: 1.0,
        ContentKind.LINK: 0.75,
        ContentKind.IMAGE: 1.3,
        ContentKind.VIDEO: 1.2,
    },
    Platform.YOUTUBE: {ContentKind.VIDEO: 1.0},
}
# (best length range in chars, fast_hours range, slow_hours range, spacing_hours range,
#  impressions-per-engagement range)
_PACE: dict[Platform, tuple[tuple[float, float], ...]] = {
    Platform.FACEBOOK: ((80, 250), (1.0, 4.0), (12.0, 36.0), (2.0, 8.0), (15.0, 40.0)),
    Platform.INSTAGRAM: ((100, 600), (1.0, 3.0), (12.0, 36.0), (2.0, 6.0), (8.0, 25.0)),
    Platform.LINKEDIN: ((300, 1300), (3.0, 8.0), (24.0, 48.0), (6.0, 16.0), (20.0, 60.0)),
    Platform.YOUTUBE: ((100, 1000), (6.0, 18.0), (36.0, 60.0), (12.0, 36.0), (8.0, 30.0)),
}


def draw_audience(config: EngagementSim, platform: Platform, rng: random.Random) -> AudienceSpec:
    """A plausible audience for an account of ``platform``, every number from ``rng``."""
    centres, weekdays = _HABITS[platform]
    length, fast, slow, spacing, impressions = _PACE[platform]
    low, high = config.mean_engagement[platform]
    return AudienceSpec(
        zones=_draw_zones(config, rng),
        peaks=_draw_peaks(centres, rng),
        floor=rng.uniform(0.05, 0.3),
        weekdays=tuple(w * math.exp(rng.gauss(0, 0.1)) for w in weekdays),
        mean_engagement=math.exp(rng.uniform(math.log(low), math.log(high))),
        dispersion=rng.uniform(*config.dispersion),
        content={k: m * math.exp(rng.gauss(0, 0.15)) for k, m in _CONTENT[platform].items()},
        best_length=round(rng.uniform(*length)),
        fast_share=rng.uniform(0.6, 0.9),
        fast_hours=rng.uniform(*fast),
        slow_hours=rng.uniform(*slow),
        spacing_penalty=rng.uniform(0.2, 0.6),
        spacing_hours=rng.uniform(*spacing),
        impressions_per_engagement=rng.uniform(*impressions),
        reach_share=rng.uniform(0.6, 0.9),
    )


def _draw_zones(config: EngagementSim, rng: random.Random) -> tuple[ZoneShare, ...]:
    first = rng.choice(config.zones)
    others = [zone for zone in config.zones if zone != first]
    if not others or rng.random() >= config.mixed_share:
        return (ZoneShare(zone=first),)
    main = rng.uniform(0.55, 0.85)
    return (ZoneShare(zone=first, share=main), ZoneShare(zone=rng.choice(others), share=1 - main))


def _draw_peaks(centres: Sequence[float], rng: random.Random) -> tuple[Peak, ...]:
    count = rng.randint(1, len(centres))
    chosen = rng.sample(list(centres), count)
    return tuple(
        Peak(
            hour=(centre + rng.uniform(-1.5, 1.5)) % 24,
            width_hours=rng.uniform(1.5, 3.5),
            weight=rng.uniform(0.4, 1.0),
        )
        for centre in sorted(chosen)
    )
