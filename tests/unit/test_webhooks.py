"""Webhook signatures, and the sender over the memory and SQLite stores' outboxes."""

from __future__ import annotations

import time

from herald.service.webhook_sender import (
    sign,
    verify,
)
from tests.suites.webhook_sender import SECRET, WebhookSenderSuite


class TestWebhookSender(WebhookSenderSuite):
    pass


def test_signatures_verify_and_refuse_tampering():
    body = b'{"id":"evt_1","event":"delivery.published"}'
    now = int(time.time())
    header = sign(SECRET, body, timestamp=now)
    assert header.startswith(f"t={now},v1=")
    assert verify(SECRET, body, header)
    assert not verify(SECRET, body + b" ", header)
    assert not verify("whsec_other", body, header)
    assert not verify(SECRET, body, sign(SECRET, body, timestamp=now - 3600))  # a replay
    assert not verify(SECRET, body, "v1=deadbeef")
    assert not verify(SECRET, body, "t=abc,v1=00")
    rotated = f"{header},v1={'0' * 64}"
    assert verify(SECRET, body, rotated)  # any one valid v1 signature will do
