"""The per-channel best-time model: fit a group, then each channel partially pooled toward it.

    group = fit_group(all_posts_of_the_workspace)        # weak prior, all channels pooled
    curve = fit_channel(posts_of_one_channel, group)     # prior centred on the group
    curve.estimates(range(168))                          # expected engagement, with intervals

A channel with no posts gets its group's curve, with the between-channel spread as its
uncertainty: a new channel starts from sensible defaults and its own data takes over as it
grows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from herald.optimizer.basis import Basis
from herald.optimizer.fit import Counts, fit_curve
from herald.optimizer.posterior import Posterior
from herald.optimizer.prior import PoolingSettings, Prior, channel_prior, weak_prior

__all__ = ["GroupModel", "Observation", "counts_of", "fit_channel", "fit_group"]


@dataclass(frozen=True)
class Observation:
    """One published post: when (hour of week, channel's time zone) and how it did.

    ``exposure`` scales the expectation: the audience the post could reach (followers at the
    time, for instance), so a channel that grows is not read as a channel whose hours got
    better. Leave it at 1 when unknown.
    """

    hour_of_week: float
    engagement: float
    exposure: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.hour_of_week < 168:
            raise ValueError(f"hour of week {self.hour_of_week} is not in [0, 168)")
        if self.exposure <= 0:
            raise ValueError("exposure must be positive")


@dataclass(frozen=True, eq=False)
class GroupModel:
    """A group's pooled curve, and how far its channels may stray from it."""

    posterior: Posterior
    pooling: PoolingSettings = field(default_factory=PoolingSettings)

    def channel_prior(self) -> Prior:
        p = self.posterior
        return channel_prior(p.coefficients, p.covariance, p.dispersion, p.basis, self.pooling)


def counts_of(observations: Sequence[Observation]) -> Counts:
    """Observations as the arrays the fit works on."""
    return Counts(
        np.array([o.hour_of_week for o in observations], dtype=np.float64),
        np.array([o.engagement for o in observations], dtype=np.float64),
        np.log(np.array([o.exposure for o in observations], dtype=np.float64)),
    )


def _mean_rate(counts: Counts) -> float:
    return float(np.mean(counts.engagement / np.exp(counts.log_exposure)))


def fit_group(
    observations: Sequence[Observation],
    basis: Basis | None = None,
    pooling: PoolingSettings | None = None,
) -> GroupModel:
    """The group's curve from all of its channels' posts, under a weak prior."""
    basis = basis or Basis()
    counts = counts_of(observations)
    posterior = fit_curve(counts, basis, weak_prior(basis, _mean_rate(counts)))
    return GroupModel(posterior, pooling or PoolingSettings())


def fit_channel(
    observations: Sequence[Observation],
    group: GroupModel | None = None,
    basis: Basis | None = None,
) -> Posterior:
    """One channel's curve: pooled toward ``group`` when given, else under a weak prior."""
    if group is None:
        basis = basis or Basis()
        counts = counts_of(observations)
        return fit_curve(counts, basis, weak_prior(basis, _mean_rate(counts)))
    if basis is not None and basis != group.posterior.basis:
        raise ValueError("a channel is fitted on its group's basis")
    prior = group.channel_prior()
    if not observations:
        return Posterior(
            group.posterior.basis, prior.mean, prior.covariance, group.posterior.dispersion, 0
        )
    return fit_curve(counts_of(observations), group.posterior.basis, prior)
