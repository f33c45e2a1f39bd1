"""What happens to a webhook whose attempts keep failing: held back, then disabled.

Every failed attempt (an answer other than 2xx, a timeout, a refused connection or address)
adds to the webhook's failure record in the store; one that goes through clears it.

- **Held back.** After each failure no event of the webhook is claimed for
  ``endpoint_backoff_base_s`` doubling with each failure in a row, up to
  ``endpoint_backoff_cap_s``; and while it is failing the claim gives it one request in
  flight at a time (a probe), not ``endpoint_concurrency``, and all failing webhooks
  together as much as one workspace. A dead receiver then costs the senders one request per
  hold, never their concurrency, and its events keep their attempts for when it is back
  (only the probes spend theirs).
- **Disabled**, once both hold: at least ``disable_after_failures`` attempts in a row failed,
  and every attempt failed for ``disable_after_s``. The count alone would disable a receiver
  that was down for one busy hour; the time alone, one that failed twice a week apart. The
  same shape as Svix (every attempt failed for 5 days) and Stripe (failing for several
  days), the period shorter by default because nothing is lost here: a disabled webhook's
  events are kept, pending, and go out when its owner enables it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from herald.backoff import ceiling
from herald.config import WebhookSettings
from herald.domain import WebhookHealth

__all__ = ["EndpointPolicy"]


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    hold_base_s: float
    hold_cap_s: float
    disable_after_failures: int  # 0: never disabled
    disable_after_s: float

    @classmethod
    def of(cls, settings: WebhookSettings) -> EndpointPolicy:
        return cls(
            hold_base_s=settings.endpoint_backoff_base_s,
            hold_cap_s=settings.endpoint_backoff_cap_s,
            disable_after_failures=settings.disable_after_failures,
            disable_after_s=settings.disable_after_s,
        )

    def held_until(self, health: WebhookHealth, now: datetime) -> datetime:
        """No event of the webhook is claimed before this (no jitter: one receiver, one
        schedule; the events' own retries are jittered)."""
        hold_s = ceiling(max(1, health.failures), base_s=self.hold_base_s, cap_s=self.hold_cap_s)
        return now + timedelta(seconds=hold_s)

    def disable_reason(self, health: WebhookHealth, now: datetime, error: str) -> str | None:
        """Why the webhook is disabled now, or None while it may keep trying."""
        since = health.failing_since
        if self.disable_after_failures == 0 or since is None:
            return None
        if health.failures < self.disable_after_failures:
            return None
        if now - since < timedelta(seconds=self.disable_after_s):
            return None
        return (
            f"every attempt failed since {since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} "
            f"({health.failures} in a row); the last: {error}"
        )
