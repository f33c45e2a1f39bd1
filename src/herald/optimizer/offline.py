"""The offline evaluation: fit on the earlier posts, score the later ones.

Protocol. The usable rows are ordered in time (by the time column; else by an order column
such as a month, keeping each of its values whole on one side; else by file order, assumed
oldest first). The latest ``test_fraction`` is held out. The model is fitted on the rest, and
so is a time-blind baseline: the same model with only an intercept (a channel's mean level
and its noise). On the held-out posts:

- ranking: Spearman's correlation between predicted and actual engagement, and the top-share
  hit rate (of the posts predicted best, how many were among the best), against chance;
- calibration: the share of posts inside their predictive interval, for model and baseline;
- log-likelihood per post (plug-in NB2 at the posterior mode), model minus baseline: above 0
  means the hour of week told something about the later posts.

Bootstrap intervals resample held-out posts. Observational data cannot separate an hour's
effect from whatever else was chosen along with it (content, promotion, audience growth);
the report lists what the data covered so that its figures are read with that in mind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from herald.optimizer.basis import Basis, FloatArray
from herald.optimizer.dataset import Dataset, Row
from herald.optimizer.decide import best_hours
from herald.optimizer.likelihood import log_pmf
from herald.optimizer.metrics import (
    Indices,
    Interval,
    bootstrap,
    coverage,
    spearman,
    top_share_hit_rate,
)
from herald.optimizer.model import GroupModel, fit_channel, fit_group
from herald.optimizer.posterior import Posterior
from herald.optimizer.prior import PoolingSettings
from herald.optimizer.spread import estimate_pooling

__all__ = ["EvaluationSettings", "Report", "Split", "evaluate", "hour_label", "split"]

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
PREDICTIVE_DRAWS = 4000
# The key of the curve for channels first seen in the held-out part: no CSV cell holds a NUL.
UNSEEN = "\0unseen"


@dataclass(frozen=True)
class EvaluationSettings:
    """How to split and score. ``level``: the predictive intervals' nominal coverage."""

    test_fraction: float = 0.3
    level: float = 0.9
    top_share: float = 0.25
    resamples: int = 2000
    seed: int = 12
    basis: Basis = field(default_factory=Basis)
    pooling: PoolingSettings = field(default_factory=PoolingSettings)

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1 or not 0 < self.level < 1:
            raise ValueError("test_fraction and level must be in (0, 1)")


@dataclass(frozen=True)
class Split:
    train: tuple[Row, ...]
    test: tuple[Row, ...]
    description: str


@dataclass(frozen=True)
class Report:
    """The evaluation's figures, as printed (JSON) by ``herald optimize evaluate``."""

    posts: dict[str, int]
    split: str
    model: dict[str, object]
    ranking: dict[str, object]
    calibration: dict[str, float]
    log_likelihood: dict[str, object]
    best_hours: dict[str, object]
    data: dict[str, object]


def hour_label(hour: float) -> str:
    """'Mon 10:00' for hour of week 10."""
    day, minutes = divmod(round(hour * 60) % (168 * 60), 24 * 60)
    return f"{DAYS[day]} {minutes // 60:02d}:{minutes % 60:02d}"


def _figure(value: float) -> float:
    """Four significant figures: expectations per unit of exposure can be 0.002 a post."""
    return float(f"{value:.4g}")


def split(dataset: Dataset, test_fraction: float) -> Split:
    """The earlier rows to fit on, the later ones to score (see the module's protocol)."""
    rows = sorted(dataset.rows, key=lambda r: (r.position, r.line))
    wanted = max(1, round(test_fraction * len(rows)))
    if dataset.order == "column":
        # Whole values only: a month split in two would score posts from the fitted month.
        values = sorted({r.position for r in rows}, reverse=True)
        held: set[float] = set()
        for value in values[:-1]:
            held.add(value)
            if sum(r.position in held for r in rows) >= wanted:
                break
        train = tuple(r for r in rows if r.position not in held)
        test = tuple(r for r in rows if r.position in held)
        shown = ", ".join(f"{v:g}" for v in sorted(held))
        return Split(train, test, f"by the order column: values {shown} held out")
    train, test = tuple(rows[:-wanted]), tuple(rows[-wanted:])
    if dataset.order == "time":
        return Split(train, test, "chronological: the latest posts by the time column held out")
    return Split(train, test, "by file order (assumed oldest first): the last rows held out")


@dataclass(frozen=True, eq=False)
class _Fitted:
    """One curve per channel (key ``""`` without groups; channels absent from the fitted part
    get their group's curve, kept under ``UNSEEN``), and the spread used to pool them."""

    curves: dict[str, Posterior]
    pooling: PoolingSettings | None
    pooling_estimated: bool


def _fit(rows: tuple[Row, ...], basis: Basis, pooling: PoolingSettings, grouped: bool) -> _Fitted:
    observations = [r.observation for r in rows]
    if not grouped:
        return _Fitted({"": fit_channel(observations, basis=basis)}, None, False)
    names = sorted({r.group for r in rows})
    per_channel = [[r.observation for r in rows if r.group == name] for name in names]
    group = fit_group(observations, basis, pooling)
    # With enough channels, how far they stray from the group is read from them (.spread).
    estimated = estimate_pooling(per_channel, group)
    if estimated is not None:
        group = GroupModel(group.posterior, estimated)
    curves = {
        name: fit_channel(posts, group) for name, posts in zip(names, per_channel, strict=True)
    }
    curves[UNSEEN] = fit_channel([], group)
    return _Fitted(curves, group.pooling, estimated is not None)


def _pooling(fitted: _Fitted) -> dict[str, object]:
    if fitted.pooling is None:
        return {}
    return {
        "pooling": {
            "intercept_sd": _figure(fitted.pooling.intercept_sd),
            "shape_sd": _figure(fitted.pooling.shape_sd),
            "estimated_from_channels": fitted.pooling_estimated,
        }
    }


def _curve(curves: dict[str, Posterior], group: str) -> Posterior:
    return curves[group] if group in curves else curves[UNSEEN]


@dataclass(frozen=True, eq=False)
class _Scored:
    """Per held-out post: prediction, log-likelihood and predictive bounds."""

    predicted: FloatArray
    log_lik: FloatArray
    lower: FloatArray
    upper: FloatArray


def _score(
    curves: dict[str, Posterior], test: tuple[Row, ...], level: float, rng: np.random.Generator
) -> _Scored:
    n = len(test)
    predicted, log_lik, lower, upper = (np.zeros(n) for _ in range(4))
    for name in sorted({r.group for r in test}):
        index = np.array([i for i, r in enumerate(test) if r.group == name])
        curve = _curve(curves, name)
        hours = np.array([test[i].observation.hour_of_week for i in index])
        exposure = np.array([test[i].observation.exposure for i in index])
        y = np.array([test[i].observation.engagement for i in index])
        centre, _ = curve.log_mean(hours)
        predicted[index] = np.exp(centre) * exposure
        log_lik[index] = log_pmf(y, predicted[index], curve.dispersion)
        draws = curve.draw_engagement(hours, exposure, PREDICTIVE_DRAWS, rng)
        tail = (1 - level) / 2
        lower[index], upper[index] = np.quantile(draws, [tail, 1 - tail], axis=0)
    return _Scored(predicted, log_lik, lower, upper)


def _interval(value: Interval) -> dict[str, float | None]:
    return {"value": value.value, "lower": value.lower, "upper": value.upper}


def _best_hours(
    curve: Posterior, train: tuple[Row, ...], rng: np.random.Generator
) -> dict[str, object]:
    """The (first) channel's best hours, among every hour of the week and among the hours it
    posted at: the first extrapolates, the second does not."""
    used = sorted({round(r.observation.hour_of_week, 2) for r in train})
    anywhere = best_hours(curve, rng)
    observed = best_hours(curve, rng, candidates=used)
    top = sorted(curve.estimates(used), key=lambda e: -e.expected)[:5]
    return {
        "best_any_hour": hour_label(anywhere.best),
        "credible_set_size_any_hour": len(anywhere.credible),
        "best_posted_hour": hour_label(observed.best),
        "probability_best_posted_hour": round(observed.probabilities[0], 3),
        "credible_set_size_posted_hours": len(observed.credible),
        "top_posted_hours": [
            {
                "hour": hour_label(e.hour_of_week),
                "expected": _figure(e.expected),
                "lower": _figure(e.lower),
                "upper": _figure(e.upper),
            }
            for e in top
        ],
    }


def _ranking(
    scored: _Scored,
    baseline: _Scored,
    y: FloatArray,
    settings: EvaluationSettings,
    rng: np.random.Generator,
) -> dict[str, object]:
    """Ranking scores of the model, and of the baseline: with channels, the baseline ranks
    posts by their channel's level, and only the model's gain over it is the hours' doing."""

    def resampled(score_of: Callable[[Indices], float]) -> Interval:
        return bootstrap(score_of, len(y), rng, resamples=settings.resamples)

    def rank(i: Indices) -> float:
        return spearman(scored.predicted[i], y[i])

    def blind_rank(i: Indices) -> float:
        return spearman(baseline.predicted[i], y[i])

    share = settings.top_share
    blind = resampled(blind_rank)
    return {
        "spearman": _interval(resampled(rank)),
        f"top_{round(share * 100)}pct_hit_rate": _interval(
            resampled(lambda i: top_share_hit_rate(scored.predicted[i], y[i], share))
        ),
        "top_hit_rate_by_chance": share,
        "baseline_spearman": _interval(blind),
        "spearman_gain_over_baseline": _interval(
            resampled(lambda i: rank(i) - blind_rank(i))
            if blind.value is not None
            else Interval(None, None, None, blind.level)
        ),
    }


def evaluate(dataset: Dataset, settings: EvaluationSettings, *, grouped: bool) -> Report:
    """Fit on the earlier part of ``dataset``, score the later part (module docstring)."""
    rng = np.random.default_rng(settings.seed)
    parts = split(dataset, settings.test_fraction)
    model = _fit(parts.train, settings.basis, settings.pooling, grouped)
    blind = _fit(parts.train, Basis(0, 0), settings.pooling, grouped)
    scored = _score(model.curves, parts.test, settings.level, rng)
    baseline = _score(blind.curves, parts.test, settings.level, rng)
    y = np.array([r.observation.engagement for r in parts.test])
    n = len(y)

    gain = bootstrap(
        lambda i: float(np.mean(scored.log_lik[i] - baseline.log_lik[i])),
        n,
        rng,
        resamples=settings.resamples,
    )
    first_name, first = next(iter(model.curves.items()))
    hours = Counter(round(r.observation.hour_of_week) for r in parts.train)
    return Report(
        posts={"train": len(parts.train), "test": n, "dropped_empty_cells": dataset.dropped},
        split=parts.description,
        model={
            "daily_harmonics": settings.basis.daily_harmonics,
            "weekly_harmonics": settings.basis.weekly_harmonics,
            "channels": len({r.group for r in parts.train}),
            "dispersion": round(first.dispersion, 4),
            "baseline_dispersion": round(next(iter(blind.curves.values())).dispersion, 4),
            **_pooling(model),
        },
        ranking=_ranking(scored, baseline, y, settings, rng),
        calibration={
            "level": settings.level,
            "model_coverage": coverage(scored.lower, scored.upper, y),
            "baseline_coverage": coverage(baseline.lower, baseline.upper, y),
        },
        log_likelihood={
            "model_per_post": float(np.mean(scored.log_lik)),
            "baseline_per_post": float(np.mean(baseline.log_lik)),
            "difference_per_post": _interval(gain),
        },
        best_hours={
            "channel": first_name or "(all posts)",
            **_best_hours(first, tuple(r for r in parts.train if r.group == first_name), rng),
        },
        data={
            "hours_of_week_posted_in_training": len(hours),
            "share_of_training_posts_in_5_busiest_hours": round(
                sum(c for _, c in hours.most_common(5)) / max(1, len(parts.train)), 3
            ),
        },
    )
