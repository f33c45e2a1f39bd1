"""How far a group's channels stray from it, estimated from the channels themselves.

Empirical Bayes, as in a random-effects meta-analysis: each channel is fitted on its own
(under a prior centred on the group's curve but too wide to matter), giving estimates b_c with
covariance V_c. If the channels' true coefficients spread around the group's m with covariance
T, then b_c - m is about Normal(0, V_c + T); the spread is the T that makes the observed
deviations most likely. A channel with few posts has a large V_c and so says little about T;
channels with many posts decide it. T keeps the prior's form (level sd; shape sd / order), so
there are two numbers to estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy.optimize import minimize

from herald.optimizer.basis import FloatArray
from herald.optimizer.fit import fit_curve
from herald.optimizer.model import GroupModel, Observation, counts_of
from herald.optimizer.prior import (
    WEAK_INTERCEPT_SD,
    WEAK_SHAPE_SD,
    PoolingSettings,
    Prior,
    shape_sds,
)

__all__ = ["MIN_CHANNELS", "estimate_pooling"]

# With fewer channels the spread is a guess from two or three numbers: keep the setting.
MIN_CHANNELS = 5
# Bounds of the search, on the log scale: from "all channels alike" to "nothing in common".
SPREAD_BOUNDS = (math.log(0.01), math.log(3.0))


def _deviations(
    channels: Sequence[Sequence[Observation]], group: GroupModel
) -> list[tuple[FloatArray, FloatArray]]:
    """Each channel's (b_c - m, V_c), fitted under a prior centred on the group but wide."""
    p = group.posterior
    wide = Prior(
        p.coefficients,
        np.diag(shape_sds(p.basis, WEAK_INTERCEPT_SD, WEAK_SHAPE_SD) ** 2),
        math.log(p.dispersion),
        group.pooling.dispersion_sd,
    )
    found = []
    for posts in channels:
        if posts:
            own = fit_curve(counts_of(posts), p.basis, wide)
            found.append((own.coefficients - p.coefficients, own.covariance))
    return found


def _negative_log_likelihood(
    log_spreads: FloatArray, deviations: list[tuple[FloatArray, FloatArray]], group: GroupModel
) -> float:
    intercept_sd, shape_sd = np.exp(log_spreads)
    spread = np.diag(shape_sds(group.posterior.basis, intercept_sd, shape_sd) ** 2)
    total = 0.0
    for gap, covariance in deviations:
        marginal = covariance + spread
        _, log_det = np.linalg.slogdet(marginal)
        total += 0.5 * (float(log_det) + float(gap @ np.linalg.solve(marginal, gap)))
    return total


def estimate_pooling(
    channels: Sequence[Sequence[Observation]], group: GroupModel
) -> PoolingSettings | None:
    """The spreads that best explain how the channels differ from ``group``; ``None`` with
    fewer than ``MIN_CHANNELS`` channels with posts (keep the setting then)."""
    deviations = _deviations(channels, group)
    if len(deviations) < MIN_CHANNELS:
        return None
    start = np.log([group.pooling.intercept_sd, group.pooling.shape_sd])
    found = minimize(
        _negative_log_likelihood,
        start,
        args=(deviations, group),
        method="L-BFGS-B",
        bounds=[SPREAD_BOUNDS, SPREAD_BOUNDS],
    )
    intercept_sd, shape_sd = (float(v) for v in np.exp(found.x))
    return replace(group.pooling, intercept_sd=intercept_sd, shape_sd=shape_sd)
