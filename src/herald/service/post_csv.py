"""Posts as CSV: the import format (one row per post) and the export (one row per delivery).

Import columns (UTF-8, a header row first; only ``channel_ids`` and one time form required;
list cells are separated by spaces or ``;``):

========================  ===================================================================
``channel_ids``           target channel ids
``text``                  the post's text
``link``                  a link (http or https)
``media_urls``            media URLs
``media_kinds``           ``image`` or ``video``, one per URL; empty: guessed from the file
                          extension (``.mp4 .mov .m4v .webm .avi .mkv`` are videos)
``title``                 a title (YouTube)
``scheduled_at``          a UTC instant, ISO 8601 with an offset (``2026-03-01T09:00:00Z``)
``local_time``            a wall time, ISO 8601 without offset (``2026-03-01T09:00``) ...
``timezone``              ... in this IANA zone; empty: each target channel's own zone
``on_gap``, ``on_fold``   DST rules for ``local_time``: ``error``/``shift``, ``earlier``/``later``
``next_free_slot``        ``true`` (or ``yes``/``1``): each channel's next free posting slot
``<platform>_<field>``    per-platform overrides: ``youtube_title``, ``instagram_media_urls``,
                          ``linkedin_text`` ... (fields: text, link, title, media_urls,
                          media_kinds)
========================  ===================================================================

Parsing never raises for a bad row: it yields the row's problems with the column as field, and
:mod:`herald.service.import_work` checks the rest (``PostService.check_row``), so a file is
reported in one go and imported all or nothing. The file is read one line at a time: an import
never holds it whole in memory.

Every step of the reading is bounded, as it runs on the event loop the API answers on: lines
come from :mod:`herald.service.csv_lines` (split off as the bytes come; a row of 2 MiB and
2,000 lines at most, so one step of the reader, one row, stays short); blank lines are
counted (a file may hold as many as it may hold rows) and a stretch of them yields ``None``
every :data:`BLANK_PAUSE` lines, so a reader that pauses between items pauses there too; ids
are short, and what a problem quotes of the file is cut short (:func:`shown`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TypeVar, cast

from herald.domain import Content, ContentOverride, Media, MediaKind, Platform
from herald.errors import FieldProblem, InputErrors, InvalidInput
from herald.service.csv_lines import Lines
from herald.service.posts import (
    MAX_MEDIA,
    MAX_TARGETS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    PostDraft,
    PostView,
    check_url,
)
from herald.service.scheduling import AtInstant, AtLocal, NextFreeSlot, OnFold, OnGap, When

__all__ = [
    "BLANK_PAUSE",
    "EXPORT_COLUMNS",
    "IMPORT_COLUMNS",
    "MAX_ID_CHARS",
    "check_header",
    "column_of",
    "export_rows",
    "parse_posts",
    "shown",
    "to_csv",
]

_OVERRIDE_FIELDS = ("text", "link", "title", "media_urls", "media_kinds")
# The post's targets and content: the same columns, in the same order, in both files.
_POST_COLUMNS = ("channel_ids", "text", "link", "media_urls", "media_kinds", "title")
_TIME_COLUMNS = ("scheduled_at", "local_time", "timezone", "on_gap", "on_fold", "next_free_slot")
IMPORT_COLUMNS: tuple[str, ...] = (
    _POST_COLUMNS
    + _TIME_COLUMNS
    + tuple(f"{p.value}_{f}" for p in Platform for f in _OVERRIDE_FIELDS)
)
EXPORT_COLUMNS: tuple[str, ...] = (
    "post_id",
    "created_at",
    *_POST_COLUMNS,
    "delivery_id",
    "channel_id",
    "platform",
    "status",
    "scheduled_at",
    "published_at",
    "external_id",
    "attempts",
    "last_error",
)
_VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".avi", ".mkv")
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n", ""}

#: A stretch of blank lines yields None every so many lines.
BLANK_PAUSE = 256
#: Channel ids are at most this long, as the API's ids are; a longer one is refused without
#: being quoted.
MAX_ID_CHARS = 64
_ID = re.compile(r"[A-Za-z0-9_\-]+")
_SHOWN_CHARS = 40

Row = tuple[int, PostDraft | list[FieldProblem]]
T = TypeVar("T")


class _RowProblems(Exception):
    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("row problems")
        self.problems = problems


# -- import ----------------------------------------------------------------------------------
def column_of(field_name: str | None) -> str | None:
    """The CSV column of a post field: ``content.media`` -> ``media_urls``,
    ``overrides.youtube.title`` -> ``youtube_title``; other names are columns already."""
    if field_name is None:
        return None
    parts = field_name.split(".")
    if parts[0] == "content" and len(parts) == 2:
        return _column(parts[1], "")
    if parts[0] == "overrides" and len(parts) == 3:
        return _column(parts[2], f"{parts[1]}_")
    return field_name


def _column(name: str, prefix: str) -> str:
    return f"{prefix}{'media_urls' if name == 'media' else name}"


def parse_posts(data: Iterable[bytes], *, max_rows: int) -> Iterator[Row | None]:
    """Every row of the file, read as it comes (``data``: its bytes in order, in pieces of any
    size: :func:`~herald.service.csv_lines.blocks`, or lines), as a draft or its problems,
    with its line number (the header is line 1); ``None`` now and then in a stretch of blank
    lines, so that a reader pausing between items pauses there too. File-level problems
    (encoding, header, size) raise :class:`InputErrors` when they are reached."""
    lines = Lines(data)
    reader = csv.reader(lines, strict=True)
    try:
        header = _header(next(reader, []))
        lines.row_read()
        yield from _rows(reader, lines, header, max_rows)
    except csv.Error as exc:
        raise InputErrors(
            "the file is not valid CSV", [FieldProblem("body", str(exc), reader.line_num)]
        ) from None


def check_header(data: Iterable[bytes]) -> list[str]:
    """Read the header row alone: its column names, or :class:`InputErrors` if it is not one
    an import takes (a file that is not a CSV of posts at all is refused before it becomes a
    job). Reads one row's worth of the file at most
    (:data:`~herald.service.csv_lines.MAX_ROW_BYTES`)."""
    reader = csv.reader(Lines(data), strict=True)
    try:
        return _header(next(reader, []))
    except csv.Error as exc:
        raise InputErrors(
            "the file is not valid CSV", [FieldProblem("body", str(exc), reader.line_num)]
        ) from None


def shown(value: str, limit: int = _SHOWN_CHARS) -> str:
    """``value`` as a problem quotes it: in quotes, cut at ``limit`` characters."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}..."


def _header(cells: list[str]) -> list[str]:
    if len(cells) > len(IMPORT_COLUMNS):
        problem = f"the header has {len(cells)} columns; an import takes {len(IMPORT_COLUMNS)}"
        raise InputErrors(
            "the header row is invalid; nothing was imported", [FieldProblem("header", problem, 1)]
        )
    names = [c.strip().lower() for c in cells]
    problems = [
        FieldProblem(name[:_SHOWN_CHARS] or "header", f"unknown column {shown(name)}", 1)
        for name in names
        if name not in IMPORT_COLUMNS
    ]
    if "channel_ids" not in names:
        problems.append(FieldProblem("channel_ids", "the header needs a channel_ids column", 1))
    repeated = sorted({n for n in names if names.count(n) > 1})
    problems += [FieldProblem(n, f"column {n!r} appears twice", 1) for n in repeated]
    if problems:
        raise InputErrors("the header row is invalid; nothing was imported", problems)
    return names


def _rows(
    reader: Iterator[list[str]], lines: Lines, header: list[str], max_rows: int
) -> Iterator[Row | None]:
    count = blank = 0
    rows = iter(reader)
    while True:
        line = lines.number + 1  # where this row starts: a quoted cell may span lines
        try:
            cells = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            # Named at the row's first line: an unterminated quote is only noticed at the
            # end of the file, and the end of the file is not where to look.
            raise InputErrors(
                "the file is not valid CSV",
                [FieldProblem("body", f"{exc} (in the row that starts on line {line})", line)],
            ) from None
        lines.row_read()
        if not any(cell.strip() for cell in cells):
            blank += 1
            if blank > max_rows:
                raise InputErrors(
                    f"the file has more than {max_rows} blank lines",
                    [FieldProblem("body", f"at most {max_rows} blank lines per import", line)],
                )
            if blank % BLANK_PAUSE == 0:
                yield None
            continue
        count += 1
        if count > max_rows:
            raise InputErrors(
                f"the file has more than {max_rows} rows",
                [FieldProblem("body", f"at most {max_rows} rows per import", line)],
            )
        if len(cells) > len(header):
            problem = f"the row has {len(cells)} cells; the header has {len(header)}"
            yield line, [FieldProblem("body", problem)]
            continue
        yield line, _draft(dict(zip(header, cells, strict=False)))


def _draft(row: Mapping[str, str]) -> PostDraft | list[FieldProblem]:
    problems: list[FieldProblem] = []
    targets = _collect(problems, _channel_ids, row)
    content = _collect(problems, _base_content, row)
    overrides = _collect(problems, _overrides, row)
    when = _collect(problems, _when, row)
    if targets is None or content is None or overrides is None or when is None or problems:
        return problems
    return PostDraft(targets, content, overrides, when)


def _collect(
    problems: list[FieldProblem], parse: Callable[[Mapping[str, str]], T], row: Mapping[str, str]
) -> T | None:
    """``parse(row)``, or None with its problems added to ``problems``."""
    try:
        return parse(row)
    except _RowProblems as exc:
        problems.extend(exc.problems)
    except InvalidInput as exc:
        problems.append(FieldProblem(exc.field, exc.message))
    return None


def _base_content(row: Mapping[str, str]) -> Content:
    return _content(row, "")


def _cell(row: Mapping[str, str], name: str) -> str:
    return row.get(name, "").strip()


def _split(value: str) -> list[str]:
    return value.replace(";", " ").split()


def _channel_ids(row: Mapping[str, str]) -> tuple[str, ...]:
    ids = tuple(_split(_cell(row, "channel_ids")))
    if not ids:
        raise InvalidInput("give at least one channel id", field="channel_ids")
    if len(ids) > MAX_TARGETS:
        raise InvalidInput(f"at most {MAX_TARGETS} channels per post", field="channel_ids")
    if not all(len(i) <= MAX_ID_CHARS and _ID.fullmatch(i) for i in ids):
        raise InvalidInput(
            f"a channel id is at most {MAX_ID_CHARS} letters, digits, '_' or '-'",
            field="channel_ids",
        )
    return ids


def _content(row: Mapping[str, str], prefix: str) -> Content:
    text = row.get(f"{prefix}text", "")
    title = _cell(row, f"{prefix}title") or None
    link = _cell(row, f"{prefix}link") or None
    _bounded(text, MAX_TEXT_CHARS, f"{prefix}text")
    _bounded(title or "", MAX_TITLE_CHARS, f"{prefix}title")
    if link is not None:
        check_url(link, f"{prefix}link")
    return Content(text=text, link=link, media=_media(row, prefix), title=title)


def _bounded(value: str, limit: int, column: str) -> None:
    if len(value) > limit:
        raise InvalidInput(f"at most {limit} characters", field=column)


def _media(row: Mapping[str, str], prefix: str) -> tuple[Media, ...]:
    urls = _split(_cell(row, f"{prefix}media_urls"))
    kinds = _split(_cell(row, f"{prefix}media_kinds").lower())
    column = f"{prefix}media_urls"
    if len(urls) > MAX_MEDIA:
        raise InvalidInput(f"at most {MAX_MEDIA} media per post", field=column)
    if kinds and len(kinds) != len(urls):
        raise InvalidInput(
            f"{len(kinds)} media kinds for {len(urls)} media URLs", field=f"{prefix}media_kinds"
        )
    media = []
    for index, url in enumerate(urls):
        check_url(url, column)
        kind = kinds[index] if kinds else _guess_kind(url)
        if kind not in ("image", "video"):
            raise InvalidInput("media kinds are image or video", field=f"{prefix}media_kinds")
        media.append(Media(url, MediaKind(kind)))
    return tuple(media)


def _guess_kind(url: str) -> str:
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    return "video" if path.endswith(_VIDEO_SUFFIXES) else "image"


def _overrides(row: Mapping[str, str]) -> dict[Platform, ContentOverride]:
    found: dict[Platform, ContentOverride] = {}
    problems: list[FieldProblem] = []
    for platform in Platform:
        prefix = f"{platform.value}_"
        if not any(_cell(row, prefix + f) for f in _OVERRIDE_FIELDS):
            continue
        try:
            partial = _content(row, prefix)
        except InvalidInput as exc:
            problems.append(FieldProblem(exc.field, exc.message))
            continue
        found[platform] = ContentOverride(
            text=partial.text if _cell(row, prefix + "text") else None,
            link=partial.link,
            media=partial.media or None,
            title=partial.title,
        )
    if problems:
        raise _RowProblems(problems)
    return found


def _when(row: Mapping[str, str]) -> When:
    at, local = _cell(row, "scheduled_at"), _cell(row, "local_time")
    zone_name = _cell(row, "timezone") or None
    next_slot = _flag(_cell(row, "next_free_slot").lower())
    forms = sum((bool(at), bool(local), next_slot))
    if forms != 1:
        raise InvalidInput(
            "give exactly one of scheduled_at, local_time or next_free_slot", field="scheduled_at"
        )
    if zone_name is not None and not local:
        raise InvalidInput("timezone goes with local_time", field="timezone")
    if at:
        return AtInstant(_iso(at, "scheduled_at"))
    if local:
        return AtLocal(
            _iso(local, "local_time"),
            zone_name,
            on_gap=cast(OnGap, _choice(row, "on_gap", ("error", "shift"))),
            on_fold=cast(OnFold, _choice(row, "on_fold", ("earlier", "later"))),
        )
    return NextFreeSlot()


def _flag(value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput("next_free_slot is true or false", field="next_free_slot")


def _iso(value: str, column: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"not an ISO 8601 date and time: {shown(value)}", field=column) from None


def _choice(row: Mapping[str, str], column: str, allowed: tuple[str, str]) -> str:
    value = _cell(row, column).lower() or allowed[0]
    if value not in allowed:
        raise InvalidInput(f"{column} is {' or '.join(allowed)}", field=column)
    return value


# -- export ----------------------------------------------------------------------------------
def export_rows(views: Iterable[PostView]) -> Iterator[list[str]]:
    """One row per delivery, the post's fields repeated (see :data:`EXPORT_COLUMNS`)."""
    for view in views:
        post = view.post
        content = post.content
        targets = " ".join(d.channel_id for d in view.deliveries)
        common = [
            post.id,
            post.created_at.isoformat(),
            targets,
            content.text,
            content.link or "",
            " ".join(m.url for m in content.media),
            " ".join(m.kind.value for m in content.media),
            content.title or "",
        ]
        for d in view.deliveries:
            yield [
                *common,
                d.id,
                d.channel_id,
                d.platform.value,
                d.state.value,
                d.due_at.isoformat(),
                d.published_at.isoformat() if d.published_at else "",
                d.external_id or "",
                str(d.attempts),
                d.last_error or "",
            ]


#: What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection").
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def to_csv(rows: Iterable[list[str]]) -> str:
    """The rows as CSV, each cell a spreadsheet would run as a formula (a post's text is the
    tenant's, and an export is opened by people) neutralised with a leading ``'``, as OWASP
    recommends. Import keeps text as written: the quote is the export's alone."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([_inert(cell) for cell in row] for row in rows)
    return out.getvalue()


def _inert(cell: str) -> str:
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell
