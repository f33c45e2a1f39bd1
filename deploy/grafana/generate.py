"""Herald's Grafana dashboards, generated from code: ``python deploy/grafana/generate.py``
writes ``deploy/grafana/dashboards/*.json`` from the boards of ``boards.py`` (a test fails when
the committed JSON differs from what this writes).

Built with Grafana's own ``grafana-foundation-sdk`` (typed builders generated from Grafana's
schemas, so the JSON is what Grafana itself would save) rather than ``grafanalib``, whose
hand-written models trail Grafana's panel types. Every panel and variable asks for its
Prometheus data source through a ``datasource`` variable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

sys.path[:0] = [str(Path(__file__).resolve().parents[2])]

from deploy.grafana.boards import DASHBOARDS, Board, Chart  # noqa: E402

__all__ = ["DASHBOARDS", "OUT", "render", "write"]

OUT = Path(__file__).parent / "dashboards"

_DS = DataSourceRef(type_val="prometheus", uid="${datasource}")


def _panel(chart: Chart, ids: int) -> db.Panel | stat.Panel | timeseries.Panel:
    panel: stat.Panel | timeseries.Panel = (
        stat.Panel() if chart.kind == "stat" else timeseries.Panel()
    )
    panel = panel.id(ids).title(chart.title).datasource(_DS).unit(chart.unit)
    panel = panel.height(8).span(chart.width)
    if chart.description:
        panel = panel.description(chart.description)
    for number, (expr, legend) in enumerate(chart.queries):
        query = prometheus.Dataquery().expr(expr).legend_format(legend)
        panel = panel.with_target(query.ref_id(chr(ord("A") + number)).datasource(_DS))
    return panel


def _variable(name: str, label: str, query: str) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(_DS)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )


def _datasource() -> db.DatasourceVariable:
    return (
        db.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .current(VariableOption(text="Prometheus", value="prometheus"))
    )


def render(board: Board) -> str:
    """The dashboard's JSON, as written to ``dashboards/``."""
    builder = (
        db.Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["herald"])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .editable()
        .with_variable(_datasource())
    )
    for variable in board.variables:
        builder = builder.with_variable(_variable(*variable))
    ids = 0
    for title, charts in board.rows:
        ids += 1
        builder = builder.with_row(db.Row(title).id(ids))
        for chart in charts:
            ids += 1
            builder = builder.with_panel(_panel(chart, ids))
    model = json.loads(JSONEncoder(sort_keys=True).encode(builder.build()))
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def write(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in DASHBOARDS.items():
        path = out / f"{name}.json"
        path.write_text(render(board))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)
    sys.exit(0)
