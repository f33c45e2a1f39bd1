"""The outbox's fairness, failure record and kept events on the memory and SQLite stores."""

from __future__ import annotations

from tests.suites.outbox_contract import OutboxContract


class TestOutboxContract(OutboxContract):
    pass
