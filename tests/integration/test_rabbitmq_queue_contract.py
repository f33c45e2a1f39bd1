"""The JobQueue contract on RabbitMQ (tests/suites/queue_contract.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from herald.types import JobQueue
from tests.conftest import needs_server, opened_queue
from tests.suites.queue_contract import QueueContract

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def queue(request: pytest.FixtureRequest) -> AsyncIterator[JobQueue]:
    """The tier's ``queue`` fixture runs on Redis: this module's, on RabbitMQ."""
    needs_server(request, "rabbitmq")
    async with opened_queue("rabbitmq") as opened:
        yield opened


class TestRabbitQueueContract(QueueContract):
    pass
