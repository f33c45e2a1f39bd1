"""Decisions from a posterior: the best hours with their uncertainty, and Thompson sampling.

Which hour is best is itself uncertain. Drawing curves from the posterior and counting where
each one peaks gives the probability that each hour is the best; the fewest hours that hold
``level`` of that probability are the credible set. Thompson sampling posts at the peak of a
single draw: an hour is tried as often as it may be the best, so uncertain hours keep being
explored while clearly poor ones are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from herald.optimizer.hours import HOURS_PER_WEEK
from herald.optimizer.posterior import Posterior

__all__ = ["BestHours", "best_hours", "thompson_choice"]

WEEK_GRID = tuple(float(h) for h in range(HOURS_PER_WEEK))


@dataclass(frozen=True)
class BestHours:
    """The most probably best hour, and the credible set of hours that may be best.

    ``credible`` lists hours by falling probability of being the best, until they hold
    ``level`` of it; ``probabilities`` gives each one's share of the posterior draws.
    """

    best: float
    credible: tuple[float, ...]
    probabilities: tuple[float, ...]
    level: float


def best_hours(
    posterior: Posterior,
    rng: np.random.Generator,
    *,
    candidates: Sequence[float] = WEEK_GRID,
    level: float = 0.9,
    draws: int = 4000,
) -> BestHours:
    """Where the curve peaks among ``candidates`` (every hour of the week by default)."""
    if not candidates:
        raise ValueError("no candidate hours")
    curves = posterior.draw_log_curves(candidates, draws, rng)
    wins = np.bincount(np.argmax(curves, axis=1), minlength=len(candidates)) / draws
    order = np.argsort(-wins, kind="stable")
    held = np.cumsum(wins[order])
    count = int(np.searchsorted(held, level - 1e-12) + 1)
    chosen = order[:count]
    return BestHours(
        best=float(candidates[int(order[0])]),
        credible=tuple(float(candidates[int(i)]) for i in chosen),
        probabilities=tuple(float(wins[int(i)]) for i in chosen),
        level=level,
    )


def thompson_choice(
    posterior: Posterior, candidates: Sequence[float], rng: np.random.Generator
) -> float:
    """The candidate hour where one curve drawn from the posterior peaks."""
    if not candidates:
        raise ValueError("no candidate hours")
    curve = posterior.draw_log_curves(candidates, 1, rng)[0]
    return float(candidates[int(np.argmax(curve))])
