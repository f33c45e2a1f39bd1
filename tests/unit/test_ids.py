"""Ids: a prefix, the millisecond they were made, 80 random bits."""

from __future__ import annotations

import re
from time import time_ns

from herald.domain import new_id


def _ms() -> int:
    return time_ns() // 1_000_000


def test_an_id_is_its_prefix_the_millisecond_it_was_made_and_80_random_bits():
    before = _ms()
    made = new_id("dlv")
    after = _ms()
    shape = re.fullmatch(r"dlv_([0-9a-f]{12})([0-9a-f]{20})", made)
    assert shape is not None, made
    assert before <= int(shape[1], 16) <= after


def test_ids_made_in_a_later_millisecond_sort_after_as_text():
    first = new_id("post")
    made_at = _ms()
    while _ms() == made_at:  # the next millisecond: at most one of busy waiting
        pass
    assert first < new_id("post")


def test_ids_made_in_the_same_millisecond_differ():
    assert len({new_id("dlv") for _ in range(20_000)}) == 20_000
