"""Pictures of the dashboards: ``python deploy/grafana/snapshot.py`` writes
``docs/img/dashboard-<name>.png``.

Grafana cannot be installed where these are made, so this draws what it would: the live
deployment of ``live.py`` (serve, dispatcher, two workers, the simulator) publishes for a few
minutes, with a Facebook outage in the middle, while a real Prometheus scrapes it; then every
panel's queries, exactly as the committed JSON holds them, are read over the run from
Prometheus' ``/api/v1/query_range`` and plotted in the dashboard's grid (a stat panel shows
its latest figures). Needs PostgreSQL, Redis and ``prometheus`` (scripts/services.sh starts
the servers, scripts/tools.sh installs Prometheus).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt
from matplotlib.axes import Axes

sys.path[:0] = [str(Path(__file__).resolve().parents[2])]

from deploy.grafana.live import LiveDeployment  # noqa: E402
from deploy.grafana.queries import dashboards, panels, substitute  # noqa: E402

from herald.domain import Platform  # noqa: E402

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
VALUES = {"platform": "facebook", "region": "eu-west-1"}
STEP_S = 2
#: $__rate_interval as Grafana would choose it for this step and a 1 s scrape, made wider
#: so that a few minutes of a small workload read as lines rather than spikes.
RATE_WINDOW = "20s"


async def record(posts: int, over_s: float) -> tuple[dict[str, Any], float, float]:
    """Run the deployment; every panel's series over the run, and the run's bounds."""
    with tempfile.TemporaryDirectory(prefix="herald-snapshot-") as workdir:
        async with LiveDeployment(Path(workdir)) as live:
            start = time.time()
            await live.publish(posts=posts, over_s=over_s)
            await live.publish(posts=3, over_s=0, late_s=60)  # expire unsent
            await asyncio.sleep(over_s / 3)  # a third of the way in, Facebook goes away
            await live.take_down(Platform.FACEBOOK, for_s=8)
            await asyncio.sleep(over_s * 2 / 3 + 15)  # the rest, and the last retries
            end = time.time()
            return await _series(live, start, end), start, end


async def _series(live: LiveDeployment, start: float, end: float) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, model in dashboards().items():
        for panel in panels(model):
            for target in panel["targets"]:
                expr = substitute(target["expr"], VALUES, RATE_WINDOW)
                data = await live.prometheus(
                    "/api/v1/query_range",
                    query=expr,
                    start=str(start),
                    end=str(end),
                    step=str(STEP_S),
                )
                found[f"{name}/{panel['id']}/{target['refId']}"] = data["result"]
    return found


def _legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()


def _draw_series(
    ax: Axes, panel: dict[str, Any], series: dict[str, Any], start: float, end: float
) -> None:
    for target in panel["targets"]:
        for item in series[target["refId"]]:
            xs = [(float(t) - start) for t, _ in item["values"]]
            ys = [float(v) for _, v in item["values"]]
            ax.plot(xs, ys, linewidth=1.2, label=_legend(target["legendFormat"], item["metric"]))
    if ax.lines:
        ax.legend(fontsize=6, loc="upper left", framealpha=0.3)
    else:
        ax.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, end - start)
    ax.set_xlabel("seconds into the run", fontsize=7)


def _draw_stat(ax: Axes, panel: dict[str, Any], series: dict[str, Any]) -> None:
    figures = []
    for target in panel["targets"]:
        for item in series[target["refId"]]:
            value = float(item["values"][-1][1])
            shown = "-" if math.isnan(value) else f"{value:g}"
            figures.append(f"{_legend(target['legendFormat'], item['metric'])}: {shown}")
    ax.axis("off")
    text = "\n".join(figures) or "no data"
    ax.text(0.5, 0.45, text, ha="center", va="center", fontsize=11, transform=ax.transAxes)


def plot(name: str, model: dict[str, Any], found: dict[str, Any], start: float, end: float) -> Path:
    shown = list(panels(model))
    columns = 3
    rows = math.ceil(len(shown) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(15, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, panel in zip(axes.flat, shown, strict=False):
        series = {t["refId"]: found[f"{name}/{panel['id']}/{t['refId']}"] for t in panel["targets"]}
        title = panel["title"]
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        ax.set_title(f"{title} [{unit}]" if unit not in ("", "short") else title, fontsize=9)
        ax.tick_params(labelsize=7)
        if panel["type"] == "stat":
            _draw_stat(ax, panel, series)
        else:
            _draw_series(ax, panel, series, start, end)
    variables = ", ".join(f"{k}={v}" for k, v in VALUES.items() if f"${k}" in str(model))
    subtitle = f" ({variables})" if variables else ""
    fig.suptitle(f"{model['title']}{subtitle}", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    IMG.mkdir(parents=True, exist_ok=True)
    path = IMG / f"dashboard-{name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=120, help="posts per channel")
    parser.add_argument("--over-s", type=float, default=120.0, help="spread over this long")
    args = parser.parse_args()
    plt.style.use("dark_background")
    found, start, end = asyncio.run(record(args.posts, args.over_s))
    for name, model in dashboards().items():
        print(plot(name, model, found, start, end))


if __name__ == "__main__":
    main()
