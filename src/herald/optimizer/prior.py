"""Priors on the curve's coefficients: weak for a group, centred on the group for a channel.

Partial pooling is a Gaussian prior. A group (a workspace's or a platform's channels) is fitted
on all of its posts under a weak prior; each channel's prior is then centred on the group's
coefficients, with the group's own uncertainty plus a between-channel spread. A channel with
three posts barely moves from its group; with hundreds, its likelihood outweighs the prior and
its own curve takes over. The spread says how far one channel's audience may plausibly differ
from its group's: a setting, or estimated from the group's channels (:mod:`.spread`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from herald.optimizer.basis import Basis, FloatArray

__all__ = ["PoolingSettings", "Prior", "channel_prior", "shape_sds", "weak_prior"]


@dataclass(frozen=True, eq=False)
class Prior:
    """Gaussian prior on the coefficients, log-normal prior on the dispersion."""

    mean: FloatArray
    covariance: FloatArray
    log_dispersion_mean: float
    log_dispersion_sd: float

    @property
    def precision(self) -> FloatArray:
        return np.asarray(np.linalg.inv(self.covariance), dtype=np.float64)


@dataclass(frozen=True)
class PoolingSettings:
    """How far a channel may stray from its group, on the log scale of engagement.

    ``intercept_sd`` = 1: a channel's overall level may be e times its group's (or 1/e);
    levels differ a lot (audience sizes). ``shape_sd`` = 0.25 for the first harmonics, divided
    by the harmonic's order: a channel's hours may differ from its group's by about a quarter
    in either direction, with finer wiggles held closer still. ``dispersion_sd`` = 0.5: its
    noise is about its group's, within a factor of e^0.5.
    """

    intercept_sd: float = 1.0
    shape_sd: float = 0.25
    dispersion_sd: float = 0.5

    def __post_init__(self) -> None:
        if min(self.intercept_sd, self.shape_sd, self.dispersion_sd) <= 0:
            raise ValueError("pooling spreads must be positive")


# The weak prior lets the data speak: a shape harmonic of amplitude 1 is an e-fold swing
# across the day, far beyond any audience; it only keeps unobserved hours from running wild.
WEAK_INTERCEPT_SD = 10.0
WEAK_SHAPE_SD = 1.0
WEAK_LOG_DISPERSION_MEAN = math.log(0.5)
WEAK_LOG_DISPERSION_SD = 2.0


def shape_sds(basis: Basis, intercept_sd: float, shape_sd: float) -> FloatArray:
    """Prior standard deviation of each coefficient: ``shape_sd / k`` for harmonic ``k``."""
    orders = basis.orders()
    return np.where(orders == 0, intercept_sd, shape_sd / np.maximum(orders, 1.0))


def weak_prior(basis: Basis, mean_rate: float) -> Prior:
    """A nearly flat prior: the intercept centred on the log of the data's mean rate, the
    harmonics on zero (no rhythm), higher harmonics shrunk harder."""
    mean = np.zeros(basis.size)
    mean[0] = math.log(max(mean_rate, 1e-9))
    sds = shape_sds(basis, WEAK_INTERCEPT_SD, WEAK_SHAPE_SD)
    return Prior(mean, np.diag(sds**2), WEAK_LOG_DISPERSION_MEAN, WEAK_LOG_DISPERSION_SD)


def channel_prior(
    group_mean: FloatArray,
    group_covariance: FloatArray,
    group_dispersion: float,
    basis: Basis,
    settings: PoolingSettings,
) -> Prior:
    """A channel's prior: its group's posterior, widened by the between-channel spread."""
    spread = shape_sds(basis, settings.intercept_sd, settings.shape_sd) ** 2
    return Prior(
        np.array(group_mean, dtype=np.float64),
        np.asarray(group_covariance, dtype=np.float64) + np.diag(spread),
        math.log(group_dispersion),
        settings.dispersion_sd,
    )
