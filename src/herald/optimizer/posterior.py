"""A fitted curve and what it knows: the posterior of the coefficients (Laplace approximation).

The posterior is approximated by a Gaussian at its mode, with the inverse of the penalised
Fisher information as covariance. The log of expected engagement at an hour is linear in the
coefficients, so it is Gaussian too, and its interval maps through exp exactly: the interval
of expected engagement is asymmetric, as engagement is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from herald.optimizer.basis import Basis, FloatArray

__all__ = ["HourEstimate", "Posterior"]


@dataclass(frozen=True)
class HourEstimate:
    """Expected engagement of a post at one hour of week, for a unit exposure.

    ``expected`` is the posterior median of the mean engagement; ``lower`` and ``upper``
    bound it with the posterior probability ``level``.
    """

    hour_of_week: float
    expected: float
    lower: float
    upper: float
    level: float


@dataclass(frozen=True, eq=False)
class Posterior:
    """A channel's (or group's) fitted curve: coefficients, their covariance, the NB2
    dispersion and the number of posts it was fitted on."""

    basis: Basis
    coefficients: FloatArray
    covariance: FloatArray
    dispersion: float
    posts: int

    def log_mean(self, hours: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Posterior mean and standard deviation of log expected engagement per hour."""
        x = self.basis.design(hours)
        centre = x @ self.coefficients
        spread = np.sqrt(np.einsum("ij,jk,ik->i", x, self.covariance, x))
        return centre, spread

    def estimates(self, hours: Sequence[float], level: float = 0.9) -> list[HourEstimate]:
        """Expected engagement with its ``level`` interval at each hour."""
        z = NormalDist().inv_cdf(0.5 + level / 2)
        centre, spread = self.log_mean(hours)
        return [
            HourEstimate(
                float(h),
                float(np.exp(c)),
                float(np.exp(c - z * s)),
                float(np.exp(c + z * s)),
                level,
            )
            for h, c, s in zip(hours, centre, spread, strict=True)
        ]

    def draw_coefficients(self, draws: int, rng: np.random.Generator) -> FloatArray:
        """Coefficient vectors drawn from the posterior, one per row."""
        return np.asarray(
            rng.multivariate_normal(
                self.coefficients, self.covariance, size=draws, method="cholesky"
            ),
            dtype=np.float64,
        )

    def draw_log_curves(
        self, hours: npt.ArrayLike, draws: int, rng: np.random.Generator
    ) -> FloatArray:
        """Curves of log expected engagement drawn from the posterior: one row per draw, one
        column per hour. A single draw is what Thompson sampling acts on."""
        return self.draw_coefficients(draws, rng) @ self.basis.design(hours).T

    def draw_engagement(
        self, hours: npt.ArrayLike, exposure: npt.ArrayLike, draws: int, rng: np.random.Generator
    ) -> FloatArray:
        """Engagement of new posts drawn from the posterior predictive: a curve from the
        posterior, then NB2 noise around it (a gamma-mixed Poisson). One row per draw, one
        column per post; its quantiles are the posts' predictive intervals."""
        log_mu = self.draw_log_curves(hours, draws, rng) + np.log(np.asarray(exposure))
        size = 1.0 / self.dispersion
        rates = rng.gamma(size, np.exp(log_mu) / size)
        return np.asarray(rng.poisson(rates), dtype=np.float64)
