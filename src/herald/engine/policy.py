"""What happens to a delivery after each step: the retry, pause and check rules in one place.

Pure functions of the job, the result and the clock: the worker carries decisions out, the
unit tests pin them down.

- published: record the platform's id;
- rate limited: pause the channel or the app for as long as the platform said, retry then,
  without spending a retry (throttling is not a failure);
- auth expired: mark the channel as needing re-authorisation; its deliveries wait for it;
- content rejected: fail for good;
- transient: retry after exponential backoff with full jitter, up to ``max_retries``;
- unknown outcome: ``unconfirmed``; look the post up after ``check_delay_s`` before anything
  is sent again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from herald.backoff import full_jitter
from herald.config import EngineSettings
from herald.constants import (
    CHANNEL_NEEDS_REAUTH,
    DELIVERY_FAILED,
    DELIVERY_PUBLISHED,
    DELIVERY_UNCONFIRMED,
)
from herald.domain import Attempt, ChannelStatus, Job, Transition
from herald.errors import (
    AuthExpired,
    ContentRejected,
    DuplicateRejected,
    LimitScope,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    ReconcileUnsupported,
)
from herald.states import DeliveryState
from herald.types import Published

__all__ = ["Decision", "Policy", "describe", "webhook_event"]

S = DeliveryState
log = logging.getLogger("herald.policy")


@dataclass(frozen=True, slots=True)
class Decision:
    transition: Transition
    outcome: str  # metrics label
    event: str  # stable log event name
    pauses: tuple[tuple[LimitScope, datetime], ...] = ()
    channel_status: ChannelStatus | None = None


#: Builds the attempt record of a step from its outcome label and error message.
AttemptFactory = Callable[[str, str | None], Attempt]


_MAX_ERROR_CHARS = 2000


def describe(exc: BaseException) -> str:
    """An error as text every store can hold: platforms answer with arbitrary bytes, and one
    NUL or lone surrogate would make the database refuse a whole batch of outcomes."""
    text = str(exc) or type(exc).__name__
    text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return text[:_MAX_ERROR_CHARS]


def webhook_event(decision: Decision) -> str | None:
    """The webhook event a decision reports, if any. ``delivery.unconfirmed`` fires when Herald
    stops checking on its own and the user has to decide."""
    if decision.outcome in ("published", "reconciled"):
        return DELIVERY_PUBLISHED
    if decision.outcome == "failed":
        return DELIVERY_FAILED
    t = decision.transition
    if t.target is S.UNCONFIRMED and t.next_attempt_at is None:
        return DELIVERY_UNCONFIRMED
    return None


class Policy:
    def __init__(self, settings: EngineSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()

    def is_expired(self, job: Job, now: datetime) -> bool:
        return now - job.delivery.due_at > timedelta(seconds=self.settings.max_lateness_s)

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.settings.lease_s)

    # -- before sending ---------------------------------------------------------------------
    def publishing(
        self, job: Job, now: datetime, *, looked_up: Attempt | None = None
    ) -> Transition:
        """Durably mark that a request is about to leave: written before it is sent."""
        return Transition(
            job.delivery.id,
            S.PUBLISHING,
            claim_token=job.claim_token,
            lease_until=self.lease_until(now),
            sent=True,
            check_first=False,
            check_since=now,
            attempt=looked_up,
        )

    def release(self, job: Job, next_at: datetime) -> Transition:
        """Give an unsent delivery back to the store, due again at ``next_at``; one that
        still owes a look-up goes back ``unconfirmed``."""
        delivery = job.delivery
        owes_check = delivery.check_first
        if owes_check:
            target = S.UNCONFIRMED
        else:
            target = S.RETRY_WAIT if delivery.attempts else S.SCHEDULED
        return Transition(
            delivery.id,
            target,
            claim_token=job.claim_token,
            next_attempt_at=next_at,
            check_first=owes_check,
            error=delivery.last_error,
        )

    def _unconfirmed(self, job: Job, **fields: Any) -> Transition:
        """The outcome is unknown: nothing is sent again before the post is looked up."""
        return Transition(
            job.delivery.id,
            S.UNCONFIRMED,
            claim_token=job.claim_token,
            check_first=True,
            **fields,
        )

    def abandoned(self, job: Job, now: datetime) -> Transition:
        """The engine stopped while this delivery's request was in flight: look it up later."""
        return self._unconfirmed(
            job,
            next_attempt_at=now + timedelta(seconds=self.settings.check_delay_s),
            error="the engine stopped while the publish request was in flight",
        )

    def expire(self, job: Job, now: datetime, *, looked_up: Attempt | None = None) -> Decision:
        t = Transition(
            job.delivery.id,
            S.EXPIRED,
            claim_token=job.claim_token,
            check_first=False,
            error=f"not published within {self.settings.max_lateness_s:.0f} s of its due time",
            attempt=looked_up,
        )
        return Decision(t, "expired", "delivery.expired")

    def rejected_unsent(self, job: Job, error: Exception) -> Decision:
        """Content that can never be sent (caught at the last moment): nothing was sent."""
        t = Transition(
            job.delivery.id, S.FAILED, claim_token=job.claim_token, error=describe(error)
        )
        return Decision(t, "failed", DELIVERY_FAILED)

    def auth_unsent(self, job: Job, error: Exception, now: datetime) -> Decision:
        """The channel's secrets could not be had: it needs the user; nothing was sent."""
        t = self.release(job, now)
        return Decision(
            Transition(
                t.delivery_id,
                t.target,
                claim_token=t.claim_token,
                next_attempt_at=now,
                check_first=t.check_first,
                error=describe(error),
            ),
            "auth",
            CHANNEL_NEEDS_REAUTH,
            channel_status=ChannelStatus.NEEDS_REAUTH,
        )

    # -- after sending ----------------------------------------------------------------------
    def after_publish(
        self, job: Job, started: datetime, finished: datetime, result: Published | BaseException
    ) -> Decision:
        delivery, token = job.delivery, job.claim_token
        if isinstance(result, Published):
            t = Transition(
                delivery.id,
                S.PUBLISHED,
                claim_token=token,
                external_id=result.external_id,
                published_at=finished,
                check_first=False,
                attempt=Attempt(delivery.id, delivery.attempts + 1, started, finished, "published"),
            )
            return Decision(
                t, "published", DELIVERY_PUBLISHED, pauses=self._usage_pauses(result, finished)
            )
        number = delivery.attempts + 1

        def record(outcome: str, error: str | None) -> Attempt:
            return Attempt(delivery.id, number, started, finished, outcome, error)

        return self._failure(job, result, finished, record)

    def _usage_pauses(
        self, result: Published, now: datetime
    ) -> tuple[tuple[LimitScope, datetime], ...]:
        """A platform that reports its limit reached (Graph usage headers) is given a rest,
        even on a success: the quota may be shared with other apps or people."""
        usage = result.usage
        if usage is None:
            return ()
        rest = usage.regain_after_s or self.settings.throttle_pause_s
        until = now + timedelta(seconds=rest)
        full: list[tuple[LimitScope, datetime]] = []
        if usage.app_pct is not None and usage.app_pct >= 100:
            full.append(("app", until))
        if usage.channel_pct is not None and usage.channel_pct >= 100:
            full.append(("channel", until))
        return tuple(full)

    def _failure(
        self, job: Job, exc: BaseException, now: datetime, attempt: AttemptFactory
    ) -> Decision:
        delivery, token = job.delivery, job.claim_token
        message = describe(exc)
        if isinstance(exc, RateLimited):
            until = now + timedelta(seconds=exc.retry_after or self.settings.throttle_pause_s)
            t = Transition(
                delivery.id,
                S.RETRY_WAIT,
                claim_token=token,
                next_attempt_at=until,
                error=message,
                attempt=attempt("rate_limited", message),
            )
            pauses = ((exc.scope, until),) if exc.pause else ()
            return Decision(t, "rate_limited", "delivery.rate_limited", pauses=pauses)
        if isinstance(exc, AuthExpired):
            t = Transition(
                delivery.id,
                S.RETRY_WAIT,
                claim_token=token,
                next_attempt_at=now,
                error=message,
                attempt=attempt("auth", message),
            )
            return Decision(
                t, "auth", CHANNEL_NEEDS_REAUTH, channel_status=ChannelStatus.NEEDS_REAUTH
            )
        if isinstance(exc, DuplicateRejected) and delivery.attempts > 0:
            return self._duplicate(job, message, now, attempt)
        if isinstance(exc, ContentRejected):
            t = Transition(
                delivery.id,
                S.FAILED,
                claim_token=token,
                error=message,
                attempt=attempt("rejected", message),
            )
            return Decision(t, "failed", DELIVERY_FAILED)
        if isinstance(exc, PlatformError) and not isinstance(exc, OutcomeUnknown):
            return self._transient(job, message, now, attempt)
        # OutcomeUnknown, or anything unexpected after the request may have left: the post
        # may exist. Never resend on a guess; look it up first.
        if not isinstance(exc, OutcomeUnknown):
            log.error("delivery.unexpected_error", exc_info=exc, extra={"delivery_id": delivery.id})
        next_at = now + timedelta(seconds=self.settings.check_delay_s)
        t = self._unconfirmed(
            job,
            next_attempt_at=next_at,
            error=message,
            attempt=attempt("unknown", message),
        )
        return Decision(t, "unconfirmed", DELIVERY_UNCONFIRMED)

    def _duplicate(
        self, job: Job, message: str, now: datetime, attempt: AttemptFactory
    ) -> Decision:
        """Refused as a repeat after an earlier send: that send most likely landed. Look the
        post up again instead of failing; if it stays out of sight, leave it to the user."""
        delivery = job.delivery
        if delivery.retries + 1 > self.settings.max_retries:
            t = self._unconfirmed(
                job,
                next_attempt_at=None,
                error=f"the platform says this post exists but it cannot be found: {message}",
                attempt=attempt("duplicate", message),
            )
            return Decision(t, "unconfirmed", "delivery.needs_decision")
        t = self._unconfirmed(
            job,
            next_attempt_at=now + timedelta(seconds=self.settings.check_delay_s),
            retry_spent=True,
            error=message,
            attempt=attempt("duplicate", message),
        )
        return Decision(t, "unconfirmed", DELIVERY_UNCONFIRMED)

    def _transient(
        self, job: Job, message: str, now: datetime, attempt: AttemptFactory
    ) -> Decision:
        delivery, token = job.delivery, job.claim_token
        retry = delivery.retries + 1
        if retry > self.settings.max_retries:
            t = Transition(
                delivery.id,
                S.FAILED,
                claim_token=token,
                error=f"gave up after {delivery.retries} retries: {message}",
                attempt=attempt("transient", message),
            )
            return Decision(t, "failed", DELIVERY_FAILED)
        delay = full_jitter(
            retry,
            base_s=self.settings.backoff_base_s,
            cap_s=self.settings.backoff_cap_s,
            rng=self._rng,
        )
        t = Transition(
            delivery.id,
            S.RETRY_WAIT,
            claim_token=token,
            next_attempt_at=now + timedelta(seconds=delay),
            retry_spent=True,
            error=message,
            attempt=attempt("transient", message),
        )
        return Decision(t, "retry", "delivery.retry")

    # -- after a look-up --------------------------------------------------------------------
    def after_check(
        self,
        job: Job,
        started: datetime,
        finished: datetime,
        result: Published | BaseException | None,
    ) -> Decision | Attempt:
        """A decision, or (post absent and still in time) the look-up record to publish with."""
        delivery, token = job.delivery, job.claim_token

        def record(outcome: str, error: str | None = None) -> Attempt:
            return Attempt(delivery.id, delivery.attempts, started, finished, outcome, error)

        if isinstance(result, Published):
            t = Transition(
                delivery.id,
                S.PUBLISHED,
                claim_token=token,
                external_id=result.external_id,
                reconciled=True,
                check_first=False,
                published_at=delivery.check_since or finished,
                attempt=record("found"),
            )
            return Decision(t, "reconciled", "delivery.reconciled")
        if result is None:
            if self.is_expired(job, finished):
                return self.expire(job, finished, looked_up=record("not_found"))
            return record("not_found")
        return self._check_failed(job, result, finished, record)

    def _check_failed(
        self, job: Job, exc: BaseException, now: datetime, record: AttemptFactory
    ) -> Decision:
        delivery = job.delivery
        message = describe(exc)
        if isinstance(exc, RateLimited | AuthExpired):
            decision = self._failure(job, exc, now, record)
            t = decision.transition
            return Decision(
                self._unconfirmed(
                    job,
                    next_attempt_at=t.next_attempt_at,
                    error=message,
                    attempt=t.attempt,
                ),
                decision.outcome,
                decision.event,
                decision.pauses,
                decision.channel_status,
            )
        give_up = (
            isinstance(exc, ReconcileUnsupported) or delivery.checks + 1 >= self.settings.max_checks
        )
        if give_up:
            t = self._unconfirmed(
                job,
                next_attempt_at=None,
                check_failed=True,
                error=f"could not confirm whether the post exists: {message}",
                attempt=record("check_failed", message),
            )
            return Decision(t, "unconfirmed", "delivery.needs_decision")
        delay = full_jitter(
            delivery.checks + 1,
            base_s=self.settings.backoff_base_s,
            cap_s=self.settings.backoff_cap_s,
            rng=self._rng,
        )
        t = self._unconfirmed(
            job,
            next_attempt_at=now + timedelta(seconds=max(delay, self.settings.check_delay_s)),
            check_failed=True,
            error=message,
            attempt=record("check_failed", message),
        )
        return Decision(t, "check_retry", "delivery.check_retry")
