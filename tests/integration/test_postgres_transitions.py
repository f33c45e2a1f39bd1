"""The transition table on PostgreSQL (tests/suites/transition_table.py): the same cells as the
memory and SQLite stores give in tests/unit, checked against the same expected table."""

from __future__ import annotations

import pytest

from tests.suites.transition_table import TransitionTable

pytestmark = pytest.mark.postgres


class TestTransitionTableOnPostgres(TransitionTable):
    pass
