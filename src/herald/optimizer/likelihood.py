"""The negative-binomial likelihood (NB2): counts whose variance exceeds their mean.

Engagement counts are overdispersed: a post that catches on gets ten times the typical count,
far beyond Poisson noise. NB2 has variance mu + dispersion * mu^2; dispersion -> 0 is Poisson.
Non-integer metrics (an average, a rate times an audience) are accepted: the log-gamma form
extends to real values and keeps the same mean-variance relation.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from herald.optimizer.basis import FloatArray

__all__ = ["log_pmf", "working_weights"]


def log_pmf(y: FloatArray, mu: FloatArray, dispersion: float) -> FloatArray:
    """Log-probability of each count ``y`` given its mean ``mu``."""
    size = 1.0 / dispersion  # NB2's "size" r: variance = mu + mu^2 / r
    return np.asarray(
        gammaln(y + size)
        - gammaln(size)
        - gammaln(y + 1.0)
        + size * np.log(size / (size + mu))
        + y * np.log(mu / (size + mu)),
        dtype=np.float64,
    )


def working_weights(mu: FloatArray, dispersion: float) -> FloatArray:
    """Fisher information per post for the log-linear predictor: mu / (1 + dispersion * mu).
    A post with a large mean tells less per unit than Poisson would say, as the noise grows
    with it."""
    return mu / (1.0 + dispersion * mu)
