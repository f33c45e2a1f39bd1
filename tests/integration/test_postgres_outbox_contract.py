"""The outbox's fairness, failure record and kept events on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.suites.outbox_contract import OutboxContract

pytestmark = pytest.mark.postgres


class TestOutboxContractOnPostgres(OutboxContract):
    pass
