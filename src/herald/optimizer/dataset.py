"""Reading an export of past posts (one row per post) for the offline evaluation.

Only the standard library: the file is checked and decoded here, row by row, into
observations with a group and a sort key, so that every problem is reported with its column
and line before anything is fitted. A row whose metric (or time) cell is empty is dropped and
counted; a cell that is there but is not a number (or a time) is an error, since a column
named by mistake must not quietly turn into an empty data set.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from herald.optimizer.errors import DatasetError
from herald.optimizer.hours import from_weekday_hour, hour_of_week
from herald.optimizer.model import Observation

__all__ = ["Dataset", "DatasetSpec", "Row", "load_dataset"]

Order = Literal["time", "column", "file"]


@dataclass(frozen=True)
class DatasetSpec:
    """Which file and columns to read, and how.

    Either ``time_column`` (instants; naive ones are local to ``timezone``) or both
    ``weekday_column`` (1-7, day 1 being ``weekday_one``) and ``hour_column`` (local hour,
    0-23). ``group_column`` names each post's channel; ``order_column`` orders rows that have
    no time (a month number, a sequence); ``exposure_column`` scales each post's expectation
    (the audience at the time).
    """

    path: Path
    metric: str
    time_column: str | None = None
    weekday_column: str | None = None
    hour_column: str | None = None
    weekday_one: Literal["monday", "sunday"] = "monday"
    timezone: str = "UTC"
    group_column: str | None = None
    order_column: str | None = None
    exposure_column: str | None = None
    separator: str = ","


@dataclass(frozen=True)
class Row:
    """One usable post: its observation, its channel, and its place in time (``position``:
    seconds since the epoch, the order column's value, or the line number)."""

    observation: Observation
    group: str
    position: float
    line: int


@dataclass(frozen=True)
class Dataset:
    """The usable rows, how they are ordered, and how many were dropped for empty cells."""

    rows: tuple[Row, ...]
    order: Order
    dropped: int


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise DatasetError(f"unknown time zone {name!r}", field="timezone") from exc


def _number(cell: str, column: str, line: int) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DatasetError(
            f"line {line}: column {column!r} holds {cell!r}, not a number", field=column
        ) from None
    if not math.isfinite(value):
        raise DatasetError(f"line {line}: column {column!r} is not finite", field=column)
    return value


def _check_spec(spec: DatasetSpec, header: list[str]) -> None:
    if spec.time_column is None and (spec.weekday_column is None or spec.hour_column is None):
        raise DatasetError("give --time-column, or both --weekday-column and --hour-column")
    if spec.time_column is not None and (spec.weekday_column or spec.hour_column):
        raise DatasetError("give --time-column or --weekday-column/--hour-column, not both")
    named = [
        spec.metric,
        spec.time_column,
        spec.weekday_column,
        spec.hour_column,
        spec.group_column,
        spec.order_column,
        spec.exposure_column,
    ]
    for column in named:
        if column is not None and column not in header:
            raise DatasetError(
                f"no column {column!r} in the file; its columns are: {', '.join(header)}",
                field=column,
            )


def _rows(spec: DatasetSpec) -> Iterator[tuple[int, dict[str, str]]]:
    if not spec.path.is_file():
        raise DatasetError(f"no such file: {spec.path}", field="data")
    try:
        with spec.path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=spec.separator)
            header = list(reader.fieldnames or [])
            if not header:
                raise DatasetError(f"{spec.path} is empty", field="data")
            _check_spec(spec, header)
            for record in reader:
                yield reader.line_num, {k: (v or "").strip() for k, v in record.items() if k}
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{spec.path} is not a readable CSV file: {exc}", field="data") from exc


def _when(
    spec: DatasetSpec, record: dict[str, str], line: int, zone: ZoneInfo
) -> tuple[float, float]:
    """(hour of week, seconds since the epoch or nan) of one row."""
    if spec.time_column is not None:
        cell = record[spec.time_column]
        try:
            moment = datetime.fromisoformat(cell)
        except ValueError:
            raise DatasetError(
                f"line {line}: column {spec.time_column!r} holds {cell!r}, not an ISO 8601 time",
                field=spec.time_column,
            ) from None
        moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
        return hour_of_week(moment, zone), moment.timestamp()
    if spec.weekday_column is None or spec.hour_column is None:  # refused by _check_spec
        raise DatasetError("give --time-column, or both --weekday-column and --hour-column")
    weekday = _number(record[spec.weekday_column], spec.weekday_column, line)
    hour = _number(record[spec.hour_column], spec.hour_column, line)
    try:
        return from_weekday_hour(int(weekday), hour, weekday_one=spec.weekday_one), math.nan
    except ValueError as exc:
        raise DatasetError(f"line {line}: {exc}", field=spec.weekday_column) from exc


def _row(spec: DatasetSpec, record: dict[str, str], line: int, zone: ZoneInfo) -> Row | None:
    needed = [spec.metric, spec.time_column, spec.weekday_column, spec.hour_column]
    if any(column is not None and record.get(column, "") == "" for column in needed):
        return None
    engagement = _number(record[spec.metric], spec.metric, line)
    if engagement < 0:
        raise DatasetError(f"line {line}: {spec.metric!r} is negative", field=spec.metric)
    hour, instant = _when(spec, record, line, zone)
    exposure = 1.0
    if spec.exposure_column is not None:
        exposure = _number(record[spec.exposure_column], spec.exposure_column, line)
        if exposure <= 0:
            raise DatasetError(
                f"line {line}: exposure must be positive", field=spec.exposure_column
            )
    if spec.time_column is not None:
        position = instant
    elif spec.order_column is not None:
        position = _number(record[spec.order_column], spec.order_column, line)
    else:
        position = float(line)
    group = record[spec.group_column] if spec.group_column is not None else ""
    return Row(Observation(hour, engagement, exposure), group, position, line)


def load_dataset(spec: DatasetSpec) -> Dataset:
    """The file's usable rows; :class:`DatasetError` on anything that cannot be read."""
    zone = _zone(spec.timezone)
    rows: list[Row] = []
    dropped = 0
    for line, record in _rows(spec):
        row = _row(spec, record, line, zone)
        if row is None:
            dropped += 1
        else:
            rows.append(row)
    if not rows:
        raise DatasetError(f"no usable rows in {spec.path}", field=spec.metric)
    order: Order = "time" if spec.time_column else "column" if spec.order_column else "file"
    return Dataset(tuple(rows), order, dropped)
