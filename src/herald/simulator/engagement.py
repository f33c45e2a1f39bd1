"""The engagement of every published post: its hidden expectation and what a platform shows.

Every post the simulator publishes is recorded here with its account, time, content kind
and text length; its *expected* interactions at full age come from the account's
:class:`~.audience.Audience` (the ground truth, with the spacing since the account's
previous post). What the platforms' insights endpoints show is one draw around it, made the
first time the post is looked at, from a generator seeded by the simulator's seed and the
post's id, so a run replays:

- a gamma-Poisson (negative binomial) total: ``N ~ Poisson(mu x G)``, ``G ~ Gamma(k, 1/k)``
  (the account's ``dispersion`` k), so the variance is ``mu + mu^2 / k``;
- N interactions split into the platform's kinds (reactions by type, comments, shares,
  saves) and each given an arrival delay from the audience's two-part delay law; the count
  a post shows at age ``a`` is the number that arrived by then, so counts never go down as
  a post ages and the same age always gives the same answer;
- impressions (views on YouTube) and reach scale with the same G, times a small noise of
  their own, and grow with the same law.

The ground truth never leaves through the platforms' endpoints: only the in-process API of
:class:`~.server.Simulator` (and the admin port) hands it to evaluation tooling.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from herald.domain import Platform
from herald.simulator.audience import Audience, draw_audience
from herald.simulator.audit import PostRecord
from herald.simulator.config import ContentKind, SimulatorConfig

__all__ = ["KINDS", "REACTION_TYPES", "Engagement", "Observed", "PostTruth"]

_HOUR_S = 3600.0
#: Past this many interactions of one kind, their arrivals are spread by the expectation
#: instead of one by one (the relative noise left is below 1%).
_EXACT_MAX = 20_000
#: Facebook's reaction types, as ``post_reactions_by_type_total`` names them.
REACTION_TYPES = ("like", "love", "wow", "haha", "sorry", "anger")
#: The interaction kinds of each platform and their shares of a post's interactions.
KINDS: dict[Platform, dict[str, float]] = {
    Platform.FACEBOOK: {
        "like": 0.55,
        "love": 0.14,
        "wow": 0.02,
        "haha": 0.03,
        "sorry": 0.005,
        "anger": 0.005,
        "comment": 0.15,
        "share": 0.10,
    },
    Platform.INSTAGRAM: {"like": 0.80, "comment": 0.08, "share": 0.04, "save": 0.08},
    Platform.LINKEDIN: {"like": 0.80, "comment": 0.15, "share": 0.05},
    Platform.YOUTUBE: {"like": 0.90, "comment": 0.10},
}


@dataclass(frozen=True, slots=True)
class PostTruth:
    """What the ground truth knows of one published post."""

    platform: Platform
    account: str
    post_id: str
    created_at: float  # Unix time on the simulator clock
    kind: ContentKind
    length: int  # characters of text (title and description on YouTube)
    gap_s: float | None  # since the account's previous post; None for its first
    expected: float  # expected interactions at full age


@dataclass(frozen=True, slots=True)
class Observed:
    """What a platform shows of a post at one age: counts of each interaction kind (see
    :data:`KINDS`), impressions (views on YouTube) and reach."""

    counts: dict[str, int]
    impressions: int
    reach: int

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    @property
    def reactions(self) -> int:
        return sum(self.count(kind) for kind in REACTION_TYPES)

    @property
    def engagement(self) -> int:
        """Every interaction: reactions (likes), comments, shares and saves."""
        return sum(self.counts.values())


@dataclass(slots=True)
class _Series:
    """The arrival delays (hours, sorted) of one kind, or only their number when large."""

    total: int
    delays: list[float] | None

    def at(self, hours: float, share: Callable[[float], float]) -> int:
        if self.delays is None:
            return int(self.total * share(hours * _HOUR_S))
        return bisect.bisect_right(self.delays, hours)


@dataclass(slots=True)
class _Draw:
    series: dict[str, _Series]
    impressions: float  # at full age
    reach_share: float


@dataclass(slots=True)
class _Account:
    audience: Audience
    last_post_at: float | None = None
    posts: list[str] = field(default_factory=list)


class Engagement:
    """The ground truth of every account and the engagement of every post."""

    def __init__(self, config: SimulatorConfig, name_of: Callable[[Platform, str], str]) -> None:
        self._config = config.engagement
        self._seed = config.seed
        self._name_of = name_of
        self._accounts: dict[tuple[Platform, str], _Account] = {}
        self._posts: dict[tuple[Platform, str], PostTruth] = {}
        self._pending: dict[tuple[Platform, str], tuple[PostRecord, ContentKind, float | None]] = {}
        self._draws: dict[tuple[Platform, str], _Draw] = {}

    # -- the ground truth -------------------------------------------------------------------
    def audience(self, platform: Platform, account: str) -> Audience:
        return self._account(platform, account).audience

    def record(self, record: PostRecord, kind: ContentKind) -> None:
        """A post was published: note what its expectation depends on (spacing counts from
        the account's previous post). The expectation itself is worked out when first asked
        for, so a benchmark publishing thousands of posts a second pays next to nothing."""
        state = self._account(record.platform, record.account)
        gap = None if state.last_post_at is None else record.created_at - state.last_post_at
        self._pending[(record.platform, record.post_id)] = (record, kind, gap)
        state.posts.append(record.post_id)
        state.last_post_at = record.created_at

    def post(self, platform: Platform, post_id: str) -> PostTruth | None:
        key = (platform, post_id)
        truth = self._posts.get(key)
        if truth is None and key in self._pending:
            record, kind, gap = self._pending.pop(key)
            at, length = record.created_at, len(record.text) + len(record.title or "")
            expected = self.audience(platform, record.account).expected(at, kind, length, gap)
            truth = PostTruth(platform, record.account, post_id, at, kind, length, gap, expected)
            self._posts[key] = truth
        return truth

    def posts(self, platform: Platform, account: str) -> list[PostTruth]:
        state = self._accounts.get((platform, account))
        truths = (self.post(platform, post_id) for post_id in (state.posts if state else []))
        return [truth for truth in truths if truth is not None]

    def expected(self, platform: Platform, post_id: str, age_s: float | None = None) -> float:
        """Expected interactions of a published post at ``age_s`` (at full age if None)."""
        truth = self._require(platform, post_id)
        if age_s is None:
            return truth.expected
        return truth.expected * self.audience(platform, truth.account).accumulated(age_s)

    # -- what a platform shows --------------------------------------------------------------
    def observe(self, platform: Platform, post_id: str, now: float) -> Observed:
        """The counts a platform shows of a post at ``now`` on the simulator clock."""
        truth = self._require(platform, post_id)
        audience = self.audience(platform, truth.account)
        draw = self._draw(truth, audience)
        age_s = max(0.0, now - truth.created_at)
        hours = age_s / _HOUR_S
        counts = {
            kind: series.at(hours, audience.accumulated) for kind, series in draw.series.items()
        }
        engaged = sum(counts.values())
        impressions = max(int(draw.impressions * audience.accumulated(age_s)), engaged)
        return Observed(counts, impressions, int(impressions * draw.reach_share))

    # -- internals --------------------------------------------------------------------------
    def _account(self, platform: Platform, account: str) -> _Account:
        key = (platform, account)
        state = self._accounts.get(key)
        if state is None:
            pinned = self._config.audiences.get(self._name_of(platform, account))
            if pinned is None:
                rng = random.Random(f"{self._seed}:audience:{platform.value}:{account}")
                pinned = draw_audience(self._config, platform, rng)
            state = self._accounts[key] = _Account(Audience(pinned, platform))
        return state

    def _require(self, platform: Platform, post_id: str) -> PostTruth:
        truth = self.post(platform, post_id)
        if truth is None:
            raise KeyError(f"no published {platform.value} post {post_id!r}")
        return truth

    def _draw(self, truth: PostTruth, audience: Audience) -> _Draw:
        key = (truth.platform, truth.post_id)
        draw = self._draws.get(key)
        if draw is None:
            rng = random.Random(f"{self._seed}:engagement:{truth.platform.value}:{truth.post_id}")
            draw = self._draws[key] = _draw_post(truth, audience, rng)
        return draw


def _draw_post(truth: PostTruth, audience: Audience, rng: random.Random) -> _Draw:
    spec = audience.spec
    gain = rng.gammavariate(spec.dispersion, 1 / spec.dispersion)
    mean = truth.expected * gain
    shares = KINDS[truth.platform]
    series = {kind: _series(mean * share, audience, rng) for kind, share in shares.items()}
    impressions = mean * spec.impressions_per_engagement * math.exp(rng.gauss(0, 0.15))
    return _Draw(series, impressions, spec.reach_share)


def _series(mean: float, audience: Audience, rng: random.Random) -> _Series:
    """A Poisson number of arrivals of one kind (independent Poissons split a Poisson
    total, so kinds drawn apart add up to the negative-binomial total), with their delays."""
    total = _poisson(mean, rng)
    if total > _EXACT_MAX:
        return _Series(total, None)
    spec = audience.spec
    delays = sorted(
        rng.expovariate(1 / spec.fast_hours)
        if rng.random() < spec.fast_share
        else rng.expovariate(1 / spec.slow_hours)
        for _ in range(total)
    )
    return _Series(total, delays)


def _poisson(mean: float, rng: random.Random) -> int:
    """A Poisson draw: counting unit-rate arrivals up to ``mean``; a normal past 50,000."""
    if mean <= 0:
        return 0
    if mean > 50_000:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    count, clock = 0, rng.expovariate(1.0)
    while clock < mean:
        count += 1
        clock += rng.expovariate(1.0)
    return count
