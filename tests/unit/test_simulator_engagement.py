"""The simulator's engagement ground truth: cycles that peak where an audience is set to, in
its own time zone(s); overdispersed counts around the expectation; counts that only grow
with a post's age and saturate; the penalty of posting right after the previous post;
content effects; and a run that replays from its seed."""

from __future__ import annotations

import itertools
import statistics
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from herald.domain import Platform
from herald.simulator import (
    AudienceSpec,
    ContentKind,
    EngagementSim,
    Peak,
    PostRecord,
    SimulatorConfig,
    ZoneShare,
)
from herald.simulator.audience import HOURS_PER_WEEK, Audience
from herald.simulator.engagement import Engagement

FB, LI = Platform.FACEBOOK, Platform.LINKEDIN
HOUR, DAY = 3600.0, 86_400.0
#: Monday 2026-06-01 00:00 UTC: a week with no clock change in either hemisphere's zones.
MONDAY = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
#: Tokyo evenings at 20:00, Saturdays twice as busy, interactions that come fast.
TOKYO = AudienceSpec(
    zones=(ZoneShare(zone="Asia/Tokyo"),),
    peaks=(Peak(hour=20.0, width_hours=1.5),),
    floor=0.05,
    weekdays=(1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0),
    fast_share=0.9,
    fast_hours=0.5,
    mean_engagement=80.0,
)


def book(spec: AudienceSpec | None = None, *, seed: int = 0) -> Engagement:
    """An engagement book whose accounts are all named ``a``: pinned to ``spec`` if given."""
    pinned = {} if spec is None else {"a": spec}
    config = SimulatorConfig(seed=seed, engagement=EngagementSim(audiences=pinned))
    return Engagement(config, lambda platform, account: "a")


def publish(
    engagement: Engagement,
    post_id: str,
    at: float,
    *,
    account: str = "acct",
    kind: ContentKind = ContentKind.IMAGE,
    text: str = "",
    platform: Platform = FB,
) -> float:
    engagement.record(PostRecord(platform, account, post_id, text, at, True), kind)
    return engagement.expected(platform, post_id)


# -- the cycles ----------------------------------------------------------------------------------


def test_activity_peaks_at_the_configured_local_hour() -> None:
    audience = Audience(TOKYO, FB)
    tokyo = ZoneInfo("Asia/Tokyo")
    day = datetime(2026, 6, 3, tzinfo=tokyo)  # a Wednesday in Tokyo
    by_hour = [audience.activity(day.replace(hour=h).timestamp()) for h in range(24)]
    assert by_hour.index(max(by_hour)) == 20
    assert max(by_hour) > 5 * min(by_hour)


def test_truth_is_best_just_before_the_peak_and_on_the_busy_day() -> None:
    hours = Audience(TOKYO, FB).hour_of_week(MONDAY)
    assert len(hours) == HOURS_PER_WEEK
    best = hours.index(max(hours))
    # Saturday, at the hour the rush meets the evening peak (posting before the top pays).
    assert best // 24 == 5
    assert 18 <= best % 24 <= 20
    weekday_best = max(hours[2 * 24 : 3 * 24])  # Wednesday
    assert max(hours) > 1.7 * weekday_best


def test_hours_of_week_are_local_across_a_clock_change() -> None:
    berlin = AudienceSpec(
        zones=(ZoneShare(zone="Europe/Berlin"),), peaks=(Peak(hour=9.0, width_hours=1.0),)
    )
    audience = Audience(berlin, FB)
    winter = audience.hour_of_week(datetime(2026, 1, 14, tzinfo=UTC).timestamp())
    summer = audience.hour_of_week(MONDAY)
    assert winter.index(max(winter[:24])) == summer.index(max(summer[:24]))


def test_a_mixed_audience_has_a_peak_in_each_zone() -> None:
    mixed = AudienceSpec(
        zones=(
            ZoneShare(zone="America/New_York", share=0.6),
            ZoneShare(zone="Asia/Tokyo", share=0.4),
        ),
        peaks=(Peak(hour=20.0, width_hours=1.0),),
        floor=0.02,
    )
    audience = Audience(mixed, FB)
    day = datetime(2026, 6, 3, tzinfo=UTC)
    by_hour = [audience.activity(day.replace(hour=h).timestamp()) for h in range(24)]
    # 20:00 in New York (EDT) is 00:00 UTC; 20:00 in Tokyo is 11:00 UTC.
    assert by_hour[0] > by_hour[11] > 5 * by_hour[6]
    assert by_hour[11] > 5 * by_hour[18]
    assert str(audience.zone) == "America/New_York"  # the larger share


def test_activity_averages_one_over_the_week() -> None:
    audience = Audience(TOKYO, FB)
    mean = statistics.fmean(audience.activity(MONDAY + h * HOUR) for h in range(HOURS_PER_WEEK))
    assert mean == pytest.approx(1.0, rel=0.03)


# -- noise, growth, spacing, content ---------------------------------------------------------


def test_counts_are_overdispersed_around_the_expectation() -> None:
    spec = TOKYO.model_copy(update={"dispersion": 2.0, "mean_engagement": 40.0})
    engagement = book(spec)
    totals, expected = [], set()
    for week in range(300):  # the same hour of each week: the same expectation
        at = MONDAY + week * 7 * DAY + 12 * HOUR
        expected.add(round(publish(engagement, f"p{week}", at), 6))
        totals.append(engagement.observe(FB, f"p{week}", at + 60 * DAY).engagement)
    [mu] = expected
    mean, variance = statistics.fmean(totals), statistics.variance(totals)
    assert mean == pytest.approx(mu, rel=0.2)
    # Negative binomial: variance mu + mu^2 / k, far above Poisson's mu.
    assert variance > 4 * mean
    assert variance == pytest.approx(mu + mu**2 / 2.0, rel=0.45)


def test_a_huge_shape_leaves_poisson_noise() -> None:
    spec = TOKYO.model_copy(update={"dispersion": 1e6, "mean_engagement": 40.0})
    engagement = book(spec)
    totals = []
    for week in range(300):
        at = MONDAY + week * 7 * DAY + 12 * HOUR
        publish(engagement, f"p{week}", at)
        totals.append(engagement.observe(FB, f"p{week}", at + 60 * DAY).engagement)
    assert statistics.variance(totals) / statistics.fmean(totals) == pytest.approx(1.0, abs=0.3)


def test_counts_grow_with_age_then_saturate() -> None:
    engagement = book(TOKYO.model_copy(update={"fast_hours": 2.0, "slow_hours": 24.0}))
    publish(engagement, "p", MONDAY)
    ages = [0, 60, 600, HOUR, 3 * HOUR, 6 * HOUR, DAY, 3 * DAY, 7 * DAY, 30 * DAY]
    seen = [engagement.observe(FB, "p", MONDAY + age) for age in ages]
    for earlier, later in itertools.pairwise(seen):
        assert later.impressions >= earlier.impressions
        assert later.reach >= earlier.reach
        assert all(later.count(kind) >= n for kind, n in earlier.counts.items())
    assert seen[0].engagement == seen[0].impressions == 0
    final = seen[-1].engagement
    assert seen[5].engagement > 0.5 * final  # most within the first hours
    assert seen[8].engagement >= 0.95 * final  # almost all by 7 days
    again = engagement.observe(FB, "p", MONDAY + DAY)  # the same age, the same answer
    assert again == seen[6]
    expected = [engagement.expected(FB, "p", age) for age in ages]
    assert expected == sorted(expected)
    assert expected[-1] == pytest.approx(engagement.expected(FB, "p"), rel=1e-6)


def test_posting_soon_after_the_previous_post_costs() -> None:
    spec = TOKYO.model_copy(update={"spacing_penalty": 0.5, "spacing_hours": 4.0})
    engagement = book(spec)
    alone = publish(engagement, "alone", MONDAY + 12 * HOUR, account="other")
    publish(engagement, "first", MONDAY + 11.5 * HOUR)
    crowded = publish(engagement, "second", MONDAY + 12 * HOUR)
    assert crowded / alone == pytest.approx(1 - 0.5 * 2.718281828 ** (-0.5 / 4.0), rel=1e-6)
    rested = publish(engagement, "later", MONDAY + 7 * DAY + 12 * HOUR)  # a week on
    assert rested == pytest.approx(alone, rel=1e-3)
    truth = engagement.post(FB, "second")
    assert truth is not None
    assert truth.gap_s == pytest.approx(HOUR / 2)


def test_content_and_length_change_the_expectation() -> None:
    spec = TOKYO.model_copy(
        update={
            "content": {ContentKind.VIDEO: 1.5, ContentKind.TEXT: 0.6},
            "best_length": 100,
            "length_effect": 0.3,
        }
    )
    engagement = book(spec)
    week = 7 * DAY
    at = MONDAY + 12 * HOUR
    video = publish(engagement, "v", at, account="v", kind=ContentKind.VIDEO, text="x" * 100)
    text = publish(engagement, "t", at + week, account="t", kind=ContentKind.TEXT, text="x" * 100)
    long = publish(
        engagement, "l", at + 2 * week, account="l", kind=ContentKind.TEXT, text="x" * 5000
    )
    assert video / text == pytest.approx(1.5 / 0.6, rel=1e-3)
    assert 0.7 < long / text < 0.95


# -- seeds and configuration ------------------------------------------------------------------


def test_every_account_gets_an_audience_drawn_from_the_seed() -> None:
    engagement = book(seed=7)
    specs = [engagement.audience(p, f"acct{i}").spec for p in Platform for i in range(3)]
    assert len({spec.model_dump_json() for spec in specs}) == len(specs)  # all different
    again = book(seed=7)
    assert again.audience(LI, "acct1").spec == engagement.audience(LI, "acct1").spec
    assert book(seed=8).audience(LI, "acct1").spec != engagement.audience(LI, "acct1").spec


def test_the_same_seed_and_posts_replay_the_same_counts() -> None:
    def run(seed: int) -> list[tuple[int, int, int]]:
        engagement = book(seed=seed)
        out = []
        for i in range(5):
            at = MONDAY + i * 5 * HOUR
            publish(engagement, f"p{i}", at, text="hello")
            seen = engagement.observe(FB, f"p{i}", at + DAY)
            out.append((seen.engagement, seen.impressions, seen.reach))
        return out

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_a_pinned_audience_is_found_by_account_name() -> None:
    engagement = book(TOKYO)
    assert engagement.audience(FB, "any id").spec == TOKYO


def test_audiences_refuse_unknown_zones_and_bad_ranges() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        ZoneShare(zone="Mars/Olympus")
    with pytest.raises(ValueError, match="ranges"):
        EngagementSim(dispersion=(5.0, 1.0))
    with pytest.raises(KeyError):
        book().expected(FB, "never published")
