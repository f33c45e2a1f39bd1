"""The pooling plot of docs/optimizer.md: a channel's learned curve against its planted truth.

    python bench/optimizer_curves.py                 # writes docs/img/optimizer-pooling.png
    python bench/optimizer_curves.py --out /tmp/x    # what the test runs

A group of 20 channels whose audience peaks at noon, best on Tuesdays, and one channel whose
own audience peaks at 20:00, best on Saturdays (the curves of tests/unit/test_optimizer_model.py,
NB2 noise with dispersion 0.4, fixed seed). One panel per amount of the channel's own data: its
fitted curve (posterior median and 90 % interval of expected engagement per hour of week)
starts on the group's and moves onto its own as posts accumulate: the level first (a
channel's overall level may differ from its group's by a factor, so a few posts move it),
the shape of its week later.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
from matplotlib import pyplot as plt

from herald.optimizer import Observation, fit_channel, fit_group

WEEK = np.arange(168, dtype=float)
OWN_POSTS = (0, 3, 30, 300)
SEED = 7


def planted(daily_peak: float, weekly_peak: float) -> np.ndarray:
    """Expected engagement over the week (a level of e^3 = 20 per post)."""
    return np.exp(
        3
        + 0.5 * np.cos(2 * np.pi * (WEEK - daily_peak) / 24)
        + 0.3 * np.cos(2 * np.pi * (WEEK - weekly_peak) / 168)
    )


def posts(curve: np.ndarray, count: int, rng: np.random.Generator) -> list[Observation]:
    hours = rng.integers(0, 168, count)
    counts = rng.poisson(rng.gamma(1 / 0.4, curve[hours] * 0.4))
    return [Observation(float(h), float(y)) for h, y in zip(hours, counts, strict=True)]


def draw(out: Path) -> Path:
    rng = np.random.default_rng(SEED)
    group_truth, own_truth = planted(12, 36), planted(20, 140)
    group = fit_group([o for _ in range(20) for o in posts(group_truth, 60, rng)])
    figure, axes = plt.subplots(len(OWN_POSTS), 1, figsize=(9, 9), sharex=True, sharey=True)
    for ax, count in zip(axes, OWN_POSTS, strict=True):
        estimates = fit_channel(posts(own_truth, count, rng), group).estimates(list(WEEK))
        ax.fill_between(
            WEEK, [e.lower for e in estimates], [e.upper for e in estimates], alpha=0.25,
            label="90 % interval",
        )  # fmt: skip
        ax.plot(WEEK, [e.expected for e in estimates], label="fitted (posterior median)")
        ax.plot(WEEK, own_truth, color="black", label="the channel's truth")
        ax.plot(WEEK, group_truth, color="grey", linestyle="--", label="its group's truth")
        ax.set_title(f"{count} posts of its own", fontsize=10)
        ax.set_ylabel("engagement")
        ax.set_yscale("log")  # the model's own scale: a channel's level is a factor away
    axes[-1].set_xticks(range(0, 169, 24), ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", ""])
    axes[-1].set_xlabel("hour of week (channel's time zone)")
    axes[0].legend(fontsize=8, loc="upper left", ncols=2)
    figure.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "optimizer-pooling.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "img")
    print(draw(parser.parse_args().out))


if __name__ == "__main__":
    main()
