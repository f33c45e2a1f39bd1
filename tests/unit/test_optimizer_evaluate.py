"""``herald optimize evaluate``: the offline evaluation on exports of past posts.

Synthetic files with a planted hour-of-week effect (written to tmp_path) check that the
command finds what is there; bad input must fail with a message and exit 2. The real-data run
(docs/optimizer.md) reads the shared Facebook export when it is present.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from herald.cli import app
from herald.optimizer.dataset import DatasetSpec, load_dataset
from herald.optimizer.metrics import bootstrap, spearman, top_share_hit_rate
from herald.optimizer.offline import split

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
FACEBOOK = Path(
    os.environ.get("HERALD_FACEBOOK_CSV", REPO.parent / "shared" / "data" / "dataset_Facebook.csv")
)


def log_mu(local_hour_of_week):
    """Evenings at 20:00 local, Saturdays best."""
    h = np.asarray(local_hour_of_week, dtype=float)
    return 3 + 0.6 * np.cos(2 * np.pi * (h - 20) / 24) + 0.3 * np.cos(2 * np.pi * (h - 140) / 168)


def write_timed_export(path, rng, posts=600, channels=3):
    """Channels in Paris, posts at random times over 20 weeks, times written in UTC."""
    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["published_at", "channel", "interactions"])
        for _ in range(posts):
            moment = start + timedelta(hours=float(rng.uniform(0, 20 * 168)))
            paris = moment.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
            local = paris.weekday() * 24 + paris.hour + paris.minute / 60
            mu = np.exp(log_mu(local))
            count = rng.poisson(rng.gamma(2.5, mu / 2.5))
            writer.writerow([moment.isoformat(), f"ch{rng.integers(channels)}", int(count)])


def evaluate(*args):
    return runner.invoke(app, ["optimize", "evaluate", *map(str, args)])


def test_a_planted_hour_effect_beats_the_time_blind_baseline_on_later_posts(tmp_path):
    export = tmp_path / "posts.csv"
    write_timed_export(export, np.random.default_rng(3))
    result = evaluate(
        "--data", export, "--metric", "interactions", "--time-column", "published_at",
        "--timezone", "Europe/Paris", "--group-column", "channel",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["posts"] == {"train": 420, "test": 180, "dropped_empty_cells": 0}
    assert report["split"].startswith("chronological")
    assert report["model"]["channels"] == 3
    assert report["model"]["pooling"]["estimated_from_channels"] is False  # too few: the setting
    gain = report["log_likelihood"]["difference_per_post"]
    assert gain["lower"] > 0  # the hour of week tells something, beyond bootstrap noise
    assert report["ranking"]["spearman"]["lower"] > 0
    # The channels share one audience: their levels rank nothing, the hours do.
    assert report["ranking"]["spearman_gain_over_baseline"]["lower"] > 0
    hit_rate = report["ranking"]["top_25pct_hit_rate"]["value"]
    assert hit_rate > report["ranking"]["top_hit_rate_by_chance"]
    assert 0.8 <= report["calibration"]["model_coverage"] <= 0.97
    # Found in Paris time: evenings (the planted 20:00), not UTC's 19:00 or 18:00.
    assert report["best_hours"]["best_any_hour"].endswith(("19:00", "20:00", "21:00"))


def test_with_enough_channels_the_spread_between_them_is_estimated(tmp_path):
    export = tmp_path / "posts.csv"
    write_timed_export(export, np.random.default_rng(13), posts=900, channels=6)
    result = evaluate(
        "--data", export, "--metric", "interactions", "--time-column", "published_at",
        "--timezone", "Europe/Paris", "--group-column", "channel",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    pooling = json.loads(result.stdout)["model"]["pooling"]
    assert pooling["estimated_from_channels"] is True
    assert pooling["shape_sd"] < 0.1  # the six channels share one audience


def test_an_export_without_dates_is_split_on_whole_values_of_its_order_column(tmp_path):
    rng = np.random.default_rng(4)
    export = tmp_path / "weekly.csv"
    with export.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["Month", "Weekday", "Hour", "Total"])
        for month in range(12, 0, -1):  # newest first, as the Facebook export
            for _ in range(30):
                weekday, hour = int(rng.integers(1, 8)), int(rng.integers(0, 24))
                local = ((weekday - 2) % 7) * 24 + hour  # 1 = Sunday
                writer.writerow([month, weekday, hour, rng.poisson(np.exp(log_mu(local)))])
        writer.writerow([12, 3, 10, ""])  # an empty metric: dropped, counted
    spec = DatasetSpec(
        export, "Total", weekday_column="Weekday", hour_column="Hour", weekday_one="sunday",
        order_column="Month", separator=";",
    )  # fmt: skip
    dataset = load_dataset(spec)
    parts = split(dataset, 0.3)
    # Whole months, the latest, until at least 30 % are held out: 4 x 30 of 360 posts.
    assert {r.position for r in parts.test} == {9.0, 10.0, 11.0, 12.0}
    assert dataset.dropped == 1
    result = evaluate(
        "--data", export, "--metric", "Total", "--weekday-column", "Weekday",
        "--hour-column", "Hour", "--weekday-one", "sunday", "--order-column", "Month",
        "--separator", ";",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "by the order column: values 9, 10, 11, 12 held out"
    assert report["posts"]["test"] == 120
    assert report["log_likelihood"]["difference_per_post"]["lower"] > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--data": "missing.csv"}, "no such file"),
        ({"--metric": "likes"}, "no column 'likes'"),
        ({"--time-column": "when"}, "no column 'when'"),
        ({"--metric": "channel"}, "not a number"),
        ({"--timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_exit_2(tmp_path, change, message):
    export = tmp_path / "posts.csv"
    write_timed_export(export, np.random.default_rng(5), posts=20)
    options = {
        "--data": export, "--metric": "interactions", "--time-column": "published_at",
        "--timezone": "UTC",
    }  # fmt: skip
    options.update({k: (tmp_path / v if k == "--data" else v) for k, v in change.items()})
    result = evaluate(*[part for pair in options.items() for part in pair])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_the_scores_on_cases_worked_by_hand():
    observed = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    assert spearman(observed, observed) == pytest.approx(1.0)
    assert spearman(-observed, observed) == pytest.approx(-1.0)
    assert np.isnan(spearman(np.ones(8), observed))  # a time-blind model ranks nothing
    assert top_share_hit_rate(observed, observed, share=0.25) == 1.0
    assert top_share_hit_rate(-observed, observed, share=0.25) == 0.0
    # All tied: each of the 2 picks is one of 8 at random, and 2 of the 8 are hits.
    assert top_share_hit_rate(np.ones(8), observed, share=0.25) == pytest.approx(0.25)
    # The second best picked first (a sure hit); the best tied with a poorer one for the
    # other pick (half a hit): 1.5 hits of 2.
    predicted = np.array([0, 0, 0, 0, 0, 5, 9, 5], dtype=float)
    assert top_share_hit_rate(predicted, observed, share=0.25) == pytest.approx(0.75)
    interval = bootstrap(lambda i: float(np.mean(observed[i])), 8, np.random.default_rng(1))
    assert interval.lower < 4.5 < interval.upper
    assert bootstrap(lambda i: float("nan"), 8, np.random.default_rng(1)).value is None


def test_neither_times_nor_weekday_and_hour_is_refused(tmp_path):
    export = tmp_path / "posts.csv"
    write_timed_export(export, np.random.default_rng(6), posts=20)
    result = evaluate("--data", export, "--metric", "interactions")
    assert result.exit_code == 2
    assert "--time-column" in result.output


@pytest.mark.skipif(not FACEBOOK.is_file(), reason="the shared Facebook export is not here")
def test_the_facebook_export_runs_and_its_figures_are_well_formed():
    result = evaluate(
        "--data", FACEBOOK, "--metric", "Total Interactions", "--weekday-column",
        "Post Weekday", "--hour-column", "Post Hour", "--weekday-one", "sunday",
        "--order-column", "Post Month", "--separator", ";",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["posts"] == {"train": 345, "test": 155, "dropped_empty_cells": 0}
    assert report["split"] == "by the order column: values 10, 11, 12 held out"
    for score in (report["ranking"]["spearman"], report["log_likelihood"]["difference_per_post"]):
        assert score["lower"] <= score["value"] <= score["upper"]
    assert 0 <= report["calibration"]["model_coverage"] <= 1


def test_the_engine_and_the_api_run_without_numpy_or_scipy():
    """The optimizer's dependencies are optional: importing Herald's engine, API and command
    line must not load them."""
    import subprocess
    import sys

    code = (
        "import sys, herald.cli, herald.engine, herald.api.app, herald.bootstrap; "
        "print(sorted(m for m in ('numpy', 'scipy', 'herald.optimizer') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]"
