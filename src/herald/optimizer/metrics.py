"""Scores of predictions against what happened, and bootstrap intervals for them.

Each score takes arrays over the held-out posts, so the bootstrap can recompute it on
resampled posts. The bootstrap resamples posts, not fits: its interval is the uncertainty of
the score on a test set of this size, with the fitted model held fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from herald.optimizer.basis import FloatArray

__all__ = ["Indices", "Interval", "bootstrap", "coverage", "spearman", "top_share_hit_rate"]

Indices = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Interval:
    """A score and its bootstrap interval (``None`` when the score is undefined)."""

    value: float | None
    lower: float | None
    upper: float | None
    level: float


def spearman(predicted: FloatArray, observed: FloatArray) -> float:
    """Spearman's rank correlation, ties at their average rank; nan when either side is
    constant (a time-blind model ranks nothing)."""
    a, b = rankdata(predicted), rankdata(observed)
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b) / scale) if scale > 0 else float("nan")


def top_share_hit_rate(predicted: FloatArray, observed: FloatArray, share: float = 0.25) -> float:
    """Of the k posts predicted best (k = ``share`` of them), the expected fraction that are
    among the k that did best; chance is about ``share``.

    Many posts share an hour and so a prediction: ties at the cut are taken at random, and
    this is the exact expectation over those draws rather than one arbitrary draw.
    """
    n = len(predicted)
    k = max(1, round(share * n))
    actual_top = np.zeros(n, dtype=bool)
    actual_top[np.argsort(-observed, kind="stable")[:k]] = True
    cut = np.sort(predicted)[::-1][k - 1]
    above = predicted > cut
    tied = predicted == cut
    left = k - int(np.sum(above))
    hits = np.sum(actual_top & above) + left / int(np.sum(tied)) * np.sum(actual_top & tied)
    return float(hits / k)


def coverage(lower: FloatArray, upper: FloatArray, observed: FloatArray) -> float:
    """Share of observations inside their interval (bounds included)."""
    return float(np.mean((observed >= lower) & (observed <= upper)))


def bootstrap(
    score: Callable[[Indices], float],
    size: int,
    rng: np.random.Generator,
    *,
    resamples: int = 2000,
    level: float = 0.95,
) -> Interval:
    """``score`` on all ``size`` posts, with the percentile interval over resampled posts.

    ``score`` receives the indices of the posts to score (all of them, then each resample).
    """
    value = score(np.arange(size))
    draws = np.array([score(rng.integers(0, size, size)) for _ in range(resamples)])
    draws = draws[np.isfinite(draws)]
    if not np.isfinite(value) or len(draws) == 0:
        return Interval(None, None, None, level)
    tail = (1 - level) / 2 * 100
    lower, upper = np.percentile(draws, [tail, 100 - tail])
    return Interval(float(value), float(lower), float(upper), level)
