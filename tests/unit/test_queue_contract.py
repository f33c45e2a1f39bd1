"""The JobQueue contract on the memory queue (tests/suites/queue_contract.py)."""

from __future__ import annotations

from tests.suites.queue_contract import QueueContract


class TestQueueContract(QueueContract):
    pass
