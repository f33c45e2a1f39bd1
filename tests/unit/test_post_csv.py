"""The CSV import's reader: it reads a file one line at a time, and names problems by line."""

from __future__ import annotations

import pytest

from herald.errors import InputErrors
from herald.service.post_csv import parse_posts
from herald.service.posts import PostDraft


def test_rows_come_as_their_lines_are_read():
    """An import never holds its file: the first row is there before the rest is read."""
    pulled: list[int] = []

    def lines():
        yield b"channel_ids,text,scheduled_at\n"
        for i in range(10_000):
            pulled.append(i)
            yield f"ch_1,row {i},2030-01-01T00:00:00Z\n".encode()

    rows = parse_posts(lines(), max_rows=20_000)
    line, first = next(rows)
    assert line == 2
    assert isinstance(first, PostDraft)
    assert len(pulled) <= 2


def test_a_row_over_the_limit_stops_the_reading_there():
    pulled: list[int] = []

    def lines():
        yield b"channel_ids\n"
        for i in range(1_000):
            pulled.append(i)
            yield b"ch_1\n"

    with pytest.raises(InputErrors) as caught:
        list(parse_posts(lines(), max_rows=3))
    assert [p.line for p in caught.value.problems] == [5]
    assert len(pulled) == 4


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"channel_ids\nch_1\nch_\xff\n", 3),
        (b"channel_ids\nch_1\nch_2\n\x00\n", 4),
        (b'channel_ids,text\nch_1,"two\nlines"\nch_\xfe,x\n', 4),
    ],
)
def test_bytes_that_are_not_text_are_named_at_their_line(data, line):
    with pytest.raises(InputErrors) as caught:
        list(parse_posts(data.splitlines(keepends=True), max_rows=10))
    assert [(p.field, p.line) for p in caught.value.problems] == [("body", line)]
