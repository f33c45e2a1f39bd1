"""Best time to post: a per-channel model of expected engagement by hour of week.

Needs the optional ``optimizer`` dependencies (numpy, scipy); nothing else in Herald imports
this package unless the feature is used. The modules, from the input up:

- :mod:`.hours`       hour of week in the channel's time zone
- :mod:`.basis`       daily and weekly Fourier terms: a smooth curve over the week
- :mod:`.likelihood`  negative-binomial counts (overdispersed engagement)
- :mod:`.prior`       weak priors, and partial pooling of a channel toward its group
- :mod:`.fit`         penalised IRLS to the posterior mode, Laplace approximation
- :mod:`.posterior`   a fitted curve: expected engagement with intervals, posterior draws
- :mod:`.model`       the entry points: ``fit_group``, ``fit_channel``
- :mod:`.spread`      how far a group's channels stray from it, estimated (empirical Bayes)
- :mod:`.decide`      the best hours with their credible set; Thompson sampling
- :mod:`.dataset`, :mod:`.metrics`, :mod:`.offline`: the offline evaluation on a CSV export
"""

from __future__ import annotations

from herald.optimizer.basis import Basis
from herald.optimizer.decide import BestHours, best_hours, thompson_choice
from herald.optimizer.hours import from_weekday_hour, hour_of_week
from herald.optimizer.model import GroupModel, Observation, fit_channel, fit_group
from herald.optimizer.posterior import HourEstimate, Posterior
from herald.optimizer.prior import PoolingSettings
from herald.optimizer.spread import estimate_pooling

__all__ = [
    "Basis",
    "BestHours",
    "GroupModel",
    "HourEstimate",
    "Observation",
    "PoolingSettings",
    "Posterior",
    "best_hours",
    "estimate_pooling",
    "fit_channel",
    "fit_group",
    "from_weekday_hour",
    "hour_of_week",
    "thompson_choice",
]
