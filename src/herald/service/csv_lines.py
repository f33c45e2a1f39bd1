r"""The lines of an uploaded CSV file, read in bounded steps (:mod:`herald.service.post_csv`
parses them).

A line ends at ``\n``, ``\r\n`` or a lone ``\r`` (as in a file opened with
``newline=""``), and is split off as the bytes come: a file of lone ``\r`` has no newline
byte at all, and used to be split whole (16 MiB of it: 620 MB and a 1.2 s step of the event
loop). Each line is decoded on its own, so a problem is named at its exact line. A row may
take :data:`MAX_ROW_BYTES` and span :data:`MAX_ROW_LINES` at most: a CSV reader reads a row in
one step, and a step must stay short.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import partial
from typing import IO

from herald.errors import FieldProblem, InputErrors

__all__ = ["MAX_ROW_BYTES", "MAX_ROW_LINES", "Lines", "blocks"]

#: The most bytes one row may take: a row at every shape limit (five texts of 63,206
#: characters, five sets of 20 URLs...) in plain text is about 0.6 MB.
MAX_ROW_BYTES = 2 * 1024 * 1024
#: The most lines one row may span (a quoted cell holds line breaks).
MAX_ROW_LINES = 2_000
_BLOCK_BYTES = 65_536
_LINE_END = re.compile(rb"\r\n?|\n")


def blocks(file: IO[bytes]) -> Iterator[bytes]:
    """A binary file's bytes in blocks of 64 KiB, as :class:`Lines` reads them."""
    return iter(partial(file.read, _BLOCK_BYTES), b"")


class Lines:
    r"""The file's lines as text, split off as the bytes come (a line ends at ``\n``,
    ``\r\n`` or a lone ``\r``, as in a file opened with ``newline=""``) and each decoded on
    its own (no UTF-8 sequence holds a line-end byte), so a problem is named at its exact
    line. The row being read may take :data:`MAX_ROW_BYTES` and :data:`MAX_ROW_LINES`; the
    reader says when a row is done (:meth:`row_read`)."""

    def __init__(self, data: Iterable[bytes]) -> None:
        self._data = data
        self._row_bytes = 0
        self._row_lines = 0
        self.number = 0  # of the last line handed out

    def row_read(self) -> None:
        self._row_bytes = self._row_lines = 0

    @property
    def _row_start(self) -> int:
        """The line where the row being read starts."""
        return self.number - self._row_lines + 1

    def __iter__(self) -> Iterator[str]:
        for raw in self._split():
            self.number += 1
            self._row_bytes += len(raw)
            self._row_lines += 1
            if self._row_bytes > MAX_ROW_BYTES:
                raise _too_long(f"at most {MAX_ROW_BYTES} bytes per row", self._row_start)
            if self._row_lines > MAX_ROW_LINES:
                raise _too_long(f"at most {MAX_ROW_LINES} lines per row", self._row_start)
            yield _decoded(raw, self.number)

    def _split(self) -> Iterator[bytes]:
        parts: list[bytes] = []  # of the line being read, up to its end
        size = 0
        after_cr = False  # the last piece ended with \r: is it the \r of a \r\n?
        for piece in self._data:
            start = 0
            if after_cr:
                after_cr = False
                if piece.startswith(b"\n"):
                    parts.append(b"\n")
                    start = 1
                yield b"".join(parts)
                parts, size = [], 0
            for end in _LINE_END.finditer(piece, start):
                parts.append(piece[start : end.end()])
                start = end.end()
                if start == len(piece) and end.group() == b"\r":
                    after_cr = True
                    break
                yield b"".join(parts)
                parts, size = [], 0
            if start < len(piece):
                parts.append(piece[start:])
                size += len(piece) - start
            if size + self._row_bytes > MAX_ROW_BYTES:
                raise _too_long(f"at most {MAX_ROW_BYTES} bytes per row", self._row_start)
        if parts:
            yield b"".join(parts)


def _decoded(raw: bytes, number: int) -> str:
    try:
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError:
        raise InputErrors(
            "the file is not UTF-8 text",
            [FieldProblem("body", "the file is not valid UTF-8", number)],
        ) from None
    if "\x00" in text:
        raise InputErrors(
            "the file holds a NUL character", [FieldProblem("body", "no NUL characters", number)]
        )
    return text


def _too_long(limit: str, line: int) -> InputErrors:
    problem = FieldProblem("body", f"{limit} (in the row that starts on line {line})", line)
    return InputErrors(f"a row of the file is too long: {limit}", [problem])
