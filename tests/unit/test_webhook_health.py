"""When a failing webhook is held back and when it is disabled (herald.service.webhook_health)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from herald.config import WebhookSettings
from herald.domain import WebhookHealth
from herald.service.webhook_health import EndpointPolicy

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
POLICY = EndpointPolicy.of(WebhookSettings())  # 1 s doubling to 600 s; 20 failures, 3 days


def test_a_failing_webhook_is_held_longer_with_each_failure_up_to_the_cap():
    holds = [POLICY.held_until(WebhookHealth(n, T0), T0) - T0 for n in (1, 2, 3, 10, 11, 50)]
    assert [h.total_seconds() for h in holds] == [1, 2, 4, 512, 600, 600]


def test_it_is_disabled_only_after_enough_failures_over_the_whole_period():
    failing_since = T0 - 3 * DAY
    assert POLICY.disable_reason(WebhookHealth(19, failing_since), T0, "HTTP 500") is None
    assert POLICY.disable_reason(WebhookHealth(500, T0 - 2 * DAY), T0, "HTTP 500") is None
    reason = POLICY.disable_reason(WebhookHealth(20, failing_since), T0, "HTTP 500")
    assert reason == (
        "every attempt failed since 2030-02-26T09:00:00Z (20 in a row); the last: HTTP 500"
    )


def test_zero_failures_means_never_disabled():
    never = EndpointPolicy.of(WebhookSettings(disable_after_failures=0, disable_after_s=0))
    assert never.disable_reason(WebhookHealth(10_000, T0 - 30 * DAY), T0, "HTTP 500") is None


def test_the_workspace_share_defaults_to_half_the_sender():
    assert WebhookSettings(concurrency=8).workspace_share == 4
    assert WebhookSettings(concurrency=5).workspace_share == 3
    assert WebhookSettings(concurrency=8, workspace_concurrency=8).workspace_share == 8


def test_a_workspace_share_above_the_sender_is_refused():
    with pytest.raises(ValidationError, match="workspace_concurrency"):
        WebhookSettings(concurrency=4, workspace_concurrency=5)
