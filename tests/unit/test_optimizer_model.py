"""The best-time model on synthetic data whose answer is known.

Each test plants a curve of expected engagement over the week, draws overdispersed counts from
it with a fixed seed, fits, and checks the model against the planted truth: the best hour is
found within the model's credible set, a channel with few posts stays near its group and one
with many follows its own curve, intervals shrink with data and cover the truth at about their
nominal rate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from herald.optimizer import (
    Basis,
    Observation,
    best_hours,
    estimate_pooling,
    fit_channel,
    fit_group,
    from_weekday_hour,
    hour_of_week,
    thompson_choice,
)

WEEK = np.arange(168, dtype=float)


def planted(daily_peak: float, weekly_peak: float, level: float = 3.0):
    """log expected engagement: a daily rhythm peaking at ``daily_peak`` o'clock, scaled by a
    weekly one peaking at hour of week ``weekly_peak``; inside the model's basis."""

    def log_mu(hours):
        hours = np.asarray(hours, dtype=float)
        return (
            level
            + 0.5 * np.cos(2 * np.pi * (hours - daily_peak) / 24)
            + 0.3 * np.cos(2 * np.pi * (hours - weekly_peak) / 168)
        )

    return log_mu


def posts(log_mu, count, rng, dispersion=0.4):
    """``count`` posts at uniform random hours, NB2 counts around the planted curve."""
    hours = rng.integers(0, 168, count).astype(float)
    mu = np.exp(log_mu(hours))
    counts = rng.poisson(rng.gamma(1 / dispersion, mu * dispersion))
    return [Observation(float(h), float(y)) for h, y in zip(hours, counts, strict=True)]


def circular_gap(a, b, period=168):
    gap = abs(a - b) % period
    return min(gap, period - gap)


def test_a_planted_best_hour_is_found_within_the_models_credible_set():
    truth = planted(daily_peak=19, weekly_peak=91)  # Thursday 19:00 is the best hour
    assert int(np.argmax(truth(WEEK))) == 91
    inside, covered, hour_gaps, day_gaps, sizes = 0, 0, [], [], []
    seeds = 40
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        curve = fit_channel(posts(truth, 400, rng))
        best = best_hours(curve, rng, level=0.9)
        inside += 91.0 in best.credible
        sizes.append(len(best.credible))
        hour_gaps.append(circular_gap(best.best % 24, 19, period=24))
        day_gaps.append(circular_gap(best.best, 91))
        (at_peak,) = curve.estimates([91.0], level=0.9)
        covered += at_peak.lower <= np.exp(truth(91.0)) <= at_peak.upper
    # 90 % sets and intervals: about 36 of 40 should hold the truth; 32 leaves room for
    # binomial noise (P(X <= 31) < 1 % at 90 %). Measured on these seeds: 36 and 33 (over 200
    # other seeds the interval at the peak covered 94 %).
    assert inside >= 32
    assert covered >= 32
    # A set that held most of the week would contain anything: it must be informative.
    assert max(sizes) <= 30
    # Neighbouring days' evenings are close seconds (a weekly swing of 0.3 on the log scale
    # is 11 % from one day to the next): the hour of day is found, the day within one.
    assert np.median(hour_gaps) <= 1
    assert max(day_gaps) <= 28


def test_a_channel_with_few_posts_stays_near_its_group_and_one_with_many_follows_its_own():
    rng = np.random.default_rng(7)
    group_truth = planted(daily_peak=12, weekly_peak=36)  # noon, best on Tuesday
    own_truth = planted(daily_peak=20, weekly_peak=140)  # evenings, best on Saturday
    group = fit_group([o for _ in range(20) for o in posts(group_truth, 60, rng)])

    few = fit_channel(posts(own_truth, 3, rng), group)
    many = fit_channel(posts(own_truth, 300, rng), group)

    def shape(curve):
        centre, _ = curve.log_mean(WEEK)
        return centre - centre.mean()

    def closeness(curve, truth):
        return float(np.corrcoef(shape(curve), truth(WEEK))[0, 1])

    assert closeness(few, group_truth) > 0.9
    assert closeness(few, own_truth) < 0.5
    assert closeness(many, own_truth) > 0.9
    assert closeness(many, group_truth) < 0.5
    # Its evenings, not the group's noon (which day is a close call, as in the test above).
    assert circular_gap(float(np.argmax(shape(many))) % 24, 20, period=24) <= 2
    assert circular_gap(float(np.argmax(shape(few))) % 24, 12, period=24) <= 2


def test_a_channel_without_posts_starts_from_its_group_with_the_spread_as_uncertainty():
    rng = np.random.default_rng(8)
    group = fit_group(posts(planted(12, 36), 600, rng))
    new = fit_channel([], group)
    assert np.allclose(new.coefficients, group.posterior.coefficients)
    _, group_sd = group.posterior.log_mean(WEEK)
    _, new_sd = new.log_mean(WEEK)
    assert np.all(new_sd > group_sd)


def straying_channels(level_sd, shape_sd, channels, count, rng):
    """Channels whose coefficients stray from a common curve by the given spreads (the
    prior's form: shape_sd / k for harmonic k), ``count`` posts each."""
    basis = Basis()
    centre = np.zeros(basis.size)
    centre[[0, 1, 2, 7]] = [3.0, 0.3, 0.3, 0.2]
    orders = basis.orders()
    sds = np.where(orders == 0, level_sd, shape_sd / np.maximum(orders, 1))
    design = basis.design(WEEK)
    found = []
    for _ in range(channels):
        own = centre + rng.normal(size=basis.size) * sds
        hours = rng.integers(0, 168, count)
        mu = np.exp(design[hours] @ own)
        counts = rng.poisson(rng.gamma(1 / 0.4, mu * 0.4))
        found.append([Observation(float(h), float(y)) for h, y in zip(hours, counts, strict=True)])
    return found


@pytest.mark.parametrize(
    ("level_sd", "shape_sd", "level_range", "shape_range"),
    [
        (0.5, 0.3, (0.3, 0.8), (0.2, 0.4)),
        (0.5, 0.0, (0.3, 0.8), (0.0, 0.05)),  # one audience: nothing to stray by
        (1.0, 0.6, (0.7, 1.6), (0.4, 0.8)),
    ],
)
def test_the_spread_between_channels_is_read_from_the_channels(
    level_sd, shape_sd, level_range, shape_range
):
    channels = straying_channels(level_sd, shape_sd, 30, 200, np.random.default_rng(1))
    group = fit_group([o for posts in channels for o in posts])
    pooling = estimate_pooling(channels, group)
    assert level_range[0] <= pooling.intercept_sd <= level_range[1]
    assert shape_range[0] <= pooling.shape_sd <= shape_range[1]
    # Three channels are too few to say: the setting stays.
    assert estimate_pooling(channels[:3], group) is None


def test_the_interval_shrinks_as_data_grows():
    rng = np.random.default_rng(9)
    truth = planted(daily_peak=9, weekly_peak=60)
    widths = []
    for count in (30, 300, 3000):
        _, sd = fit_channel(posts(truth, count, rng)).log_mean(WEEK)
        widths.append(float(np.mean(sd)))
    assert widths[0] > widths[1] > widths[2]
    # Ten times the posts: about a third of the width (1/sqrt(10)), once the prior is swamped.
    assert 0.2 < widths[2] / widths[1] < 0.5


def test_intervals_cover_the_truth_at_about_their_nominal_rate():
    rng = np.random.default_rng(10)
    truth = planted(daily_peak=15, weekly_peak=100)
    checked = np.array([3.0, 40.0, 100.0, 150.0])
    covered = {0.5: 0, 0.9: 0}
    repetitions = 100
    for _ in range(repetitions):
        curve = fit_channel(posts(truth, 200, rng))
        for level in covered:
            for estimate in curve.estimates(list(checked), level=level):
                true_mu = float(np.exp(truth(estimate.hour_of_week)))
                covered[level] += estimate.lower <= true_mu <= estimate.upper
    checks = repetitions * len(checked)
    # Binomial noise on 400 checks is about 0.015-0.025; the bounds allow for it and for the
    # four hours of a repetition sharing one fit.
    assert 0.42 <= covered[0.5] / checks <= 0.58
    assert 0.84 <= covered[0.9] / checks <= 0.95


def test_thompson_sampling_exploits_a_clear_winner_and_explores_an_uncertain_one():
    rng = np.random.default_rng(11)
    truth = planted(daily_peak=19, weekly_peak=91)
    peak, trough = 91.0, 91.0 - 84  # Thursday 19:00 against Monday 07:00
    sure = fit_channel(posts(truth, 400, rng))
    picks = [thompson_choice(sure, [peak, trough], rng) for _ in range(200)]
    assert picks.count(peak) >= 195

    unsure = fit_channel(posts(truth, 3, rng))
    picks = [thompson_choice(unsure, [peak, trough], rng) for _ in range(200)]
    assert 20 <= picks.count(peak) <= 180


def test_hours_of_week_are_counted_in_the_channels_zone_from_monday():
    moment = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)  # a Monday, 05:30 in New York
    assert hour_of_week(moment, ZoneInfo("America/New_York")) == 5.5
    assert hour_of_week(moment, ZoneInfo("Asia/Tokyo")) == 19.5
    assert from_weekday_hour(1, 3, weekday_one="sunday") == 6 * 24 + 3
    assert from_weekday_hour(2, 3, weekday_one="sunday") == 3
    assert from_weekday_hour(7, 23) == 167
    with pytest.raises(ValueError, match="weekday"):
        from_weekday_hour(0, 3)
