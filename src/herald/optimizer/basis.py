"""The smooth curve's building blocks: daily and weekly Fourier terms of the hour of week.

The log of expected engagement is an intercept plus a few sines and cosines of period 24 h
(the daily rhythm: when people are awake, commuting, at lunch) and of period 168 h (the weekly
one: weekdays against the weekend). A handful of harmonics keeps the curve smooth and wraps
Sunday night onto Monday morning, which hour-of-week dummies (168 coefficients, most of them
never observed) would not. The daily and weekly terms add up on the log scale: every day has
the same daily shape, scaled by the weekday; a different shape on Sundays is not in the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from herald.optimizer.hours import HOURS_PER_DAY, HOURS_PER_WEEK

__all__ = ["Basis", "FloatArray"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Basis:
    """Which harmonics the curve has. ``Basis(0, 0)`` is the time-blind model: an intercept.

    Weekly harmonics stay below 7: the 7th weekly harmonic is the 1st daily one.
    """

    daily_harmonics: int = 3
    weekly_harmonics: int = 3

    def __post_init__(self) -> None:
        if self.daily_harmonics < 0 or not 0 <= self.weekly_harmonics < 7:
            raise ValueError("daily harmonics must be >= 0 and weekly harmonics in 0-6")

    @property
    def size(self) -> int:
        """Number of coefficients: the intercept, then a cosine and a sine per harmonic."""
        return 1 + 2 * (self.daily_harmonics + self.weekly_harmonics)

    def orders(self) -> FloatArray:
        """Each coefficient's harmonic order (0 for the intercept): priors shrink higher
        orders harder, which is what makes the curve smooth."""
        daily = np.repeat(np.arange(1, self.daily_harmonics + 1), 2)
        weekly = np.repeat(np.arange(1, self.weekly_harmonics + 1), 2)
        return np.concatenate([[0.0], daily, weekly]).astype(np.float64)

    def design(self, hours: npt.ArrayLike) -> FloatArray:
        """The design matrix: one row per hour of week, one column per coefficient."""
        h = np.asarray(hours, dtype=np.float64).reshape(-1)
        columns = [np.ones_like(h)]
        for period, count in (
            (HOURS_PER_DAY, self.daily_harmonics),
            (HOURS_PER_WEEK, self.weekly_harmonics),
        ):
            for k in range(1, count + 1):
                angle = 2 * np.pi * k * h / period
                columns += [np.cos(angle), np.sin(angle)]
        return np.column_stack(columns)
