"""The webhook sender over PostgreSQL's outbox (tests/suites/webhook_sender.py)."""

from __future__ import annotations

import pytest

from tests.suites.webhook_sender import WebhookSenderSuite

pytestmark = pytest.mark.postgres


class TestWebhookSenderOnPostgres(WebhookSenderSuite):
    pass
