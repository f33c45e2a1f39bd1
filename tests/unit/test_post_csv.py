"""The CSV import's reader: it reads a file one line at a time, and names problems by line."""

from __future__ import annotations

import tracemalloc

import pytest

from herald.errors import InputErrors
from herald.service.csv_lines import MAX_ROW_BYTES, MAX_ROW_LINES
from herald.service.post_csv import BLANK_PAUSE, check_header, parse_posts
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


def test_a_stretch_of_blank_lines_pauses_the_reader_and_is_bounded():
    """Blank lines make no row, yet reading them takes time: a stretch of them yields None now
    and then (the job pauses there as between rows), and a file may hold no more of them than
    rows (16 MiB of them took one 14 s step of the event loop)."""
    blanks = 3 * BLANK_PAUSE + 5
    data = [b"channel_ids,next_free_slot\n", *[b"\n"] * blanks, b"ch_1,yes\n"]
    items = list(parse_posts(data, max_rows=blanks))
    assert items.count(None) == 3
    [(line, row)] = [item for item in items if item is not None]
    assert (line, isinstance(row, PostDraft)) == (blanks + 2, True)
    with pytest.raises(InputErrors) as caught:
        list(parse_posts(data, max_rows=blanks - 1))
    assert "blank lines" in caught.value.message
    assert [p.line for p in caught.value.problems] == [blanks + 1]


def test_lines_ending_in_a_lone_cr_are_split_off_as_they_are_read():
    """A file of lone CRs has no newline byte at all: read as one line and split whole, 16 MiB
    of it took 620 MB and 1.2 s in one step. Lines are now split off one by one."""
    data = b"channel_ids,next_free_slot\r" + b"ch_1,yes\r" * 1_000_000
    tracemalloc.start()
    try:
        rows = parse_posts([data], max_rows=5)
        line, first = next(rows)
        assert (line, first.channel_ids) == (2, ("ch_1",))
        with pytest.raises(InputErrors) as caught:
            list(rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [p.line for p in caught.value.problems] == [7]  # the sixth row
    assert peak < 1_000_000, peak


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([b"channel_ids\n", b"ch_" + b"x" * (MAX_ROW_BYTES + 10)], "bytes per row"),
        (
            [b"channel_ids,text\n", b'ch_1,"' + b"\n" * (MAX_ROW_LINES + 10) + b'"\n'],
            "lines per row",
        ),
    ],
)
def test_a_row_is_bounded_in_bytes_and_in_lines(data, message):
    """One step of the reader is one row: a row may not take the whole file."""
    with pytest.raises(InputErrors) as caught:
        list(parse_posts(data, max_rows=10))
    assert message in caught.value.problems[0].message
    assert caught.value.problems[0].line == 2


def test_a_header_is_read_within_a_row_of_the_file():
    pulled = []

    def blocks():
        yield b"channel_ids"
        for _ in range(256):  # 16 MiB with no line end
            pulled.append(1)
            yield b"x" * 65_536

    with pytest.raises(InputErrors):
        check_header(blocks())
    assert len(pulled) <= MAX_ROW_BYTES // 65_536 + 1


def test_channel_ids_are_short_and_never_quoted_whole():
    head = b"channel_ids,next_free_slot\n"
    [(_, problems)] = parse_posts([head, b"ch_" + b"x" * 100 + b",yes\n"], max_rows=1)
    assert [p.field for p in problems] == ["channel_ids"]
    assert "xxxx" not in problems[0].message
    [(_, draft)] = parse_posts([head, b"ch_" + b"x" * 61 + b",yes\n"], max_rows=1)
    assert isinstance(draft, PostDraft)
