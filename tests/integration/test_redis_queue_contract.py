"""The JobQueue contract on Redis Streams (tests/suites/queue_contract.py)."""

from __future__ import annotations

import pytest

from tests.suites.queue_contract import QueueContract

pytestmark = pytest.mark.redis


class TestRedisQueueContract(QueueContract):
    pass
