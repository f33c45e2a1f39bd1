"""Fitting the curve: the mode of the log-posterior by penalised IRLS, then Laplace.

For a fixed dispersion the log-posterior is concave in the coefficients (a log-linear NB2
likelihood plus a Gaussian prior), so Fisher scoring with step halving finds its one mode in a
few iterations. The dispersion is chosen by maximising the Laplace approximation of its
marginal posterior (the mode's log-posterior minus half the log-determinant of the
information), which, unlike the plain profile, does not take the curve's wiggles for signal
when posts are few.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from herald.optimizer.basis import Basis, FloatArray
from herald.optimizer.errors import OptimizerError
from herald.optimizer.likelihood import log_pmf, working_weights
from herald.optimizer.posterior import Posterior
from herald.optimizer.prior import Prior

__all__ = ["Counts", "fit_curve"]

MAX_ITERATIONS = 100
STEP_TOLERANCE = 1e-8
# exp() of a linear predictor beyond this overflows in the information matrix; no engagement
# count comes near e^30 (10^13), so clipping only guards a diverging step.
MAX_LOG_MEAN = 30.0
LOG_DISPERSION_BOUNDS = (math.log(1e-4), math.log(50.0))


@dataclass(frozen=True, eq=False)
class Counts:
    """Posts as arrays: hour of week, engagement, log exposure (0 for a unit exposure)."""

    hours: FloatArray
    engagement: FloatArray
    log_exposure: FloatArray

    def __post_init__(self) -> None:
        if not len(self.hours) == len(self.engagement) == len(self.log_exposure):
            raise ValueError("hours, engagement and exposure differ in length")


@dataclass
class _Mode:
    coefficients: FloatArray
    information: FloatArray
    log_posterior: float


@dataclass(frozen=True, eq=False)
class _Problem:
    """The design, the counts and the prior: what stays fixed while the mode is sought."""

    x: FloatArray
    counts: Counts
    prior: Prior
    precision: FloatArray

    def means(self, beta: FloatArray) -> FloatArray:
        log_mu = self.counts.log_exposure + self.x @ beta
        return np.exp(np.clip(log_mu, -MAX_LOG_MEAN, MAX_LOG_MEAN))

    def log_posterior(self, beta: FloatArray, dispersion: float) -> float:
        gap = beta - self.prior.mean
        log_lik = np.sum(log_pmf(self.counts.engagement, self.means(beta), dispersion))
        return float(log_lik - 0.5 * gap @ self.precision @ gap)

    def information(self, beta: FloatArray, dispersion: float) -> FloatArray:
        weights = working_weights(self.means(beta), dispersion)
        return self.x.T @ (weights[:, None] * self.x) + self.precision

    def score(self, beta: FloatArray, dispersion: float) -> FloatArray:
        mu = self.means(beta)
        residual = (self.counts.engagement - mu) / (1.0 + dispersion * mu)
        return self.x.T @ residual - self.precision @ (beta - self.prior.mean)


def _mode(problem: _Problem, dispersion: float, start: FloatArray) -> _Mode:
    beta = start.copy()
    current = problem.log_posterior(beta, dispersion)
    for _ in range(MAX_ITERATIONS):
        step = np.linalg.solve(
            problem.information(beta, dispersion), problem.score(beta, dispersion)
        )
        # Step halving: Fisher scoring can overshoot far from the mode (a first guess off by
        # orders of magnitude); the log-posterior must never go down.
        for _ in range(30):
            candidate = beta + step
            value = problem.log_posterior(candidate, dispersion)
            if value >= current - 1e-10:
                break
            step /= 2
        beta, current = candidate, value
        if float(np.max(np.abs(step))) < STEP_TOLERANCE:
            break
    return _Mode(beta, problem.information(beta, dispersion), current)


def fit_curve(counts: Counts, basis: Basis, prior: Prior) -> Posterior:
    """The posterior of the curve on ``counts`` under ``prior`` (Laplace approximation)."""
    if len(counts.hours) == 0:
        raise OptimizerError("no posts to fit")
    if not np.all(np.isfinite(counts.engagement)) or np.any(counts.engagement < 0):
        raise OptimizerError("engagement must be finite and not negative")
    problem = _Problem(basis.design(counts.hours), counts, prior, prior.precision)
    warm = {"beta": prior.mean.copy()}

    def negative_marginal(log_dispersion: float) -> float:
        mode = _mode(problem, math.exp(log_dispersion), warm["beta"])
        warm["beta"] = mode.coefficients  # the next dispersion's mode is close by
        _, log_det = np.linalg.slogdet(mode.information)
        log_prior = (
            -0.5 * ((log_dispersion - prior.log_dispersion_mean) / prior.log_dispersion_sd) ** 2
        )
        return -(mode.log_posterior - 0.5 * float(log_det) + log_prior)

    found = minimize_scalar(
        negative_marginal,
        bounds=LOG_DISPERSION_BOUNDS,
        method="bounded",
        options={"xatol": 1e-3},
    )
    dispersion = math.exp(float(found.x))
    mode = _mode(problem, dispersion, warm["beta"])
    if not np.all(np.isfinite(mode.coefficients)):
        raise OptimizerError("the fit did not converge to a finite curve")
    covariance = np.linalg.inv(mode.information)
    covariance = (covariance + covariance.T) / 2  # exact symmetry for Cholesky draws
    return Posterior(basis, mode.coefficients, covariance, dispersion, len(counts.hours))
