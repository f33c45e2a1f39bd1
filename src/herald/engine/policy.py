"""What happens to a delivery after each step: the retry, pause and check rules in one place.

Pure functions of the job, the result and the clock: the worker carries decisions out, the
unit tests pin them down.

- published: record the platform's id;
- rate limited: pause the channel or the app for as long as the platform said, retry then,
  without spending a retry (throttling is not a failure);
- auth expired: mark the channel as needing re-authorisation; its deliveries wait for it;
- content rejected: fail for good;
- transient: retry after exponential backoff with full jitter, up to ``max_retries``;
- not sent (the request never reached the platform): not a try. Back to ``retry_wait`` soon,
  no retry or check spent, nothing to look up; an outage of the platform
  (:mod:`herald.engine.pauses`) holds it back meanwhile;
- unknown outcome: ``unconfirmed``; look the post up after ``check_delay_s`` before anything
  is sent again. The platforms' listings are eventually consistent: a look-up that finds
  nothing sooner than ``listing_settle_s`` after the uncertain send ended proves nothing,
  and the post is looked up again once that time has passed; only a look-up made after it
  that finds nothing lets the post be sent again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
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
    RequestNotSent,
)
from herald.states import DeliveryState
from herald.types import Published

__all__ = ["NOT_SENT", "UNCERTAIN_SENDS", "Decision", "Policy", "describe", "webhook_event"]

S = DeliveryState
log = logging.getLogger("herald.policy")

#: The outcome of a request that never reached the platform (see :func:`unsent`).
NOT_SENT = "not_sent"
#: Outcomes of a send that may have made the post: its answer lost (``unknown``), refused as
#: a repeat (``duplicate``), or its engine gone before the answer (``abandoned``).
UNCERTAIN_SENDS = frozenset({"unknown", "duplicate", "abandoned"})


def unsent(exc: BaseException) -> bool:
    """``exc`` proves that nothing of the call reached the platform: not a try."""
    return isinstance(exc, RequestNotSent) and not exc.partial


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


def _move(job: Job, target: DeliveryState, **fields: Any) -> Transition:
    """A change of ``job``'s delivery to ``target``, guarded by the job's claim."""
    return Transition(job.delivery.id, target, claim_token=job.claim_token, **fields)


def _published(
    job: Job, result: Published, at: datetime, attempt: Attempt, **fields: Any
) -> Transition:
    """The platform holds the post: record its id, and when it went out."""
    return _move(
        job,
        S.PUBLISHED,
        external_id=result.external_id,
        published_at=at,
        check_first=False,
        attempt=attempt,
        **fields,
    )


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
        return _move(
            job,
            S.PUBLISHING,
            lease_until=self.lease_until(now),
            sent=True,
            check_first=False,
            check_since=now,
            attempt=looked_up,
        )

    def hand_back(self, job: Job, now: datetime, delay_s: float) -> Transition:
        """What becomes of a job this engine stops holding: unsent, released (due again after
        ``delay_s``); with its request on the wire (``publishing``), abandoned."""
        if job.delivery.state is S.PUBLISHING:
            return self.abandoned(job, now)
        return self.release(job, now + timedelta(seconds=delay_s))

    def release(
        self, job: Job, next_at: datetime, *, looked_up: Attempt | None = None
    ) -> Transition:
        """Give an unsent delivery back to the store, due again at ``next_at``; one that
        still owes a look-up goes back ``unconfirmed``. ``looked_up``: the look-up that found
        nothing just before, recorded with it."""
        delivery = job.delivery
        owes_check = delivery.check_first
        if owes_check:
            target = S.UNCONFIRMED
        else:
            target = S.RETRY_WAIT if delivery.attempts else S.SCHEDULED
        return _move(
            job,
            target,
            next_attempt_at=next_at,
            check_first=owes_check,
            error=delivery.last_error,
            attempt=looked_up,
        )

    def _unconfirmed(self, job: Job, **fields: Any) -> Transition:
        """The outcome is unknown: nothing is sent again before the post is looked up."""
        return _move(job, S.UNCONFIRMED, check_first=True, **fields)

    def _look_up(self, job: Job, now: datetime, **fields: Any) -> Transition:
        """Unknown outcome: look the post up after ``check_delay_s``."""
        next_at = now + timedelta(seconds=self.settings.check_delay_s)
        return self._unconfirmed(job, next_attempt_at=next_at, **fields)

    def _needs_decision(self, job: Job, error: str, attempt: Attempt, **fields: Any) -> Decision:
        """Herald stops checking on its own: the user decides (``delivery.unconfirmed``)."""
        t = self._unconfirmed(job, next_attempt_at=None, error=error, attempt=attempt, **fields)
        return Decision(t, "unconfirmed", "delivery.needs_decision")

    @staticmethod
    def _failed(job: Job, error: str, attempt: Attempt | None = None) -> Decision:
        return Decision(
            _move(job, S.FAILED, error=error, attempt=attempt), "failed", DELIVERY_FAILED
        )

    @staticmethod
    def _retry_wait(
        job: Job, at: datetime, error: str, attempt: Attempt, *, retry_spent: bool = False
    ) -> Transition:
        return _move(
            job,
            S.RETRY_WAIT,
            next_attempt_at=at,
            retry_spent=retry_spent,
            error=error,
            attempt=attempt,
        )

    def _backoff(self, number: int) -> float:
        """Seconds before the ``number``-th retry or look-up (full jitter)."""
        s = self.settings
        return full_jitter(number, base_s=s.backoff_base_s, cap_s=s.backoff_cap_s, rng=self._rng)

    def _soon(self, now: datetime) -> datetime:
        """When to try again a call that never reached the platform: within the first backoff
        (no retry was spent, so the delay does not grow; an outage pause holds it meanwhile)."""
        return now + timedelta(seconds=self._backoff(1))

    def abandoned(self, job: Job, now: datetime) -> Transition:
        """The engine stopped while this delivery's request was in flight: look it up later.
        A send known to have left (the job is ``publishing``, with that send's number and
        start) is recorded as ``abandoned``: the platform may have counted it, whatever the
        look-up finds."""
        error = "the engine stopped while the publish request was in flight"
        delivery, attempt = job.delivery, None
        if delivery.state is S.PUBLISHING:
            started = delivery.check_since or now
            attempt = Attempt(delivery.id, delivery.attempts, started, now, "abandoned", error)
        return self._look_up(job, now, error=error, attempt=attempt)

    def expire(self, job: Job, now: datetime, *, looked_up: Attempt | None = None) -> Decision:
        t = _move(
            job,
            S.EXPIRED,
            check_first=False,
            error=f"not published within {self.settings.max_lateness_s:.0f} s of its due time",
            attempt=looked_up,
        )
        return Decision(t, "expired", "delivery.expired")

    def paused(self, job: Job, now: datetime, wait_s: float) -> Decision:
        """A pause began after the job's grant, before its request left: it waits the pause
        out, unsent (no attempt, no retry spent)."""
        until = now + timedelta(seconds=wait_s)
        t = _move(job, S.RETRY_WAIT, next_attempt_at=until, error=job.delivery.last_error)
        return Decision(t, "paused", "delivery.paused")

    def rejected_unsent(
        self, job: Job, error: Exception, *, looked_up: Attempt | None = None
    ) -> Decision:
        """Content that can never be sent (caught at the last moment): nothing was sent but
        ``looked_up``, the look-up just before, if any."""
        return self._failed(job, describe(error), looked_up)

    def auth_unsent(self, job: Job, error: Exception, now: datetime) -> Decision:
        """The channel's secrets could not be had: it needs the user; nothing was sent."""
        return Decision(
            replace(self.release(job, now), error=describe(error)),
            "auth",
            CHANNEL_NEEDS_REAUTH,
            channel_status=ChannelStatus.NEEDS_REAUTH,
        )

    # -- after sending ----------------------------------------------------------------------
    def after_publish(
        self, job: Job, started: datetime, finished: datetime, result: Published | BaseException
    ) -> Decision:
        delivery = job.delivery
        if isinstance(result, Published):
            sent = Attempt(delivery.id, delivery.attempts + 1, started, finished, "published")
            t = _published(job, result, finished, sent)
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
        delivery = job.delivery
        message = describe(exc)
        if isinstance(exc, RateLimited):
            until = now + timedelta(seconds=exc.retry_after or self.settings.throttle_pause_s)
            t = self._retry_wait(job, until, message, attempt("rate_limited", message))
            pauses = ((exc.scope, until),) if exc.pause else ()
            return Decision(t, "rate_limited", "delivery.rate_limited", pauses=pauses)
        if isinstance(exc, AuthExpired):
            t = self._retry_wait(job, now, message, attempt("auth", message))
            return Decision(
                t, "auth", CHANNEL_NEEDS_REAUTH, channel_status=ChannelStatus.NEEDS_REAUTH
            )
        if isinstance(exc, DuplicateRejected) and delivery.attempts > 0:
            return self._duplicate(job, message, now, attempt)
        if isinstance(exc, ContentRejected):
            return self._failed(job, message, attempt("rejected", message))
        if unsent(exc):
            t = self._retry_wait(job, self._soon(now), message, attempt(NOT_SENT, message))
            return Decision(t, NOT_SENT, "delivery.not_sent")
        if isinstance(exc, PlatformError) and not isinstance(exc, OutcomeUnknown):
            return self._transient(job, message, now, attempt)
        # OutcomeUnknown, or anything unexpected after the request may have left: the post
        # may exist. Never resend on a guess; look it up first.
        if not isinstance(exc, OutcomeUnknown):
            log.error("delivery.unexpected_error", exc_info=exc, extra={"delivery_id": delivery.id})
        t = self._look_up(job, now, error=message, attempt=attempt("unknown", message))
        return Decision(t, "unconfirmed", DELIVERY_UNCONFIRMED)

    def _duplicate(
        self, job: Job, message: str, now: datetime, attempt: AttemptFactory
    ) -> Decision:
        """Refused as a repeat after an earlier send: that send most likely landed. Look the
        post up again instead of failing; if it stays out of sight, leave it to the user."""
        record = attempt("duplicate", message)
        if job.delivery.retries + 1 > self.settings.max_retries:
            error = f"the platform says this post exists but it cannot be found: {message}"
            return self._needs_decision(job, error, record)
        t = self._look_up(job, now, retry_spent=True, error=message, attempt=record)
        return Decision(t, "unconfirmed", DELIVERY_UNCONFIRMED)

    def _transient(
        self, job: Job, message: str, now: datetime, attempt: AttemptFactory
    ) -> Decision:
        retries = job.delivery.retries
        record = attempt("transient", message)
        if retries + 1 > self.settings.max_retries:
            return self._failed(job, f"gave up after {retries} retries: {message}", record)
        at = now + timedelta(seconds=self._backoff(retries + 1))
        t = self._retry_wait(job, at, message, record, retry_spent=True)
        return Decision(t, "retry", "delivery.retry")

    # -- after a look-up --------------------------------------------------------------------
    def after_check(
        self,
        job: Job,
        started: datetime,
        finished: datetime,
        result: Published | BaseException | None,
        *,
        page_usage: Mapping[str, int] | None = None,
        sent_by: datetime | None = None,
    ) -> Decision | Attempt:
        """A decision, or (post absent and still in time) the look-up record to publish with.
        ``page_usage``: what the listing pages after the first reserved, recorded with it.
        ``sent_by``: when the uncertain send ended (its attempt's end), if known."""
        delivery = job.delivery
        pages = page_usage or {}

        def record(outcome: str, error: str | None = None) -> Attempt:
            number = delivery.attempts
            return Attempt(delivery.id, number, started, finished, outcome, error, pages)

        if isinstance(result, Published):
            at = delivery.check_since or finished
            t = _published(job, result, at, record("found"), reconciled=True)
            return Decision(t, "reconciled", "delivery.reconciled")
        if result is None:
            settled = self.listings_settled_at(job, sent_by)
            if started < settled:
                # Started before the listing could show the post: look again once it can.
                # Not even expiry acts on it: the post may exist, and expired says it does not.
                early = record("not_listed_yet")
                t = self._unconfirmed(job, next_attempt_at=settled, attempt=early)
                return Decision(t, "not_listed_yet", "delivery.check_later")
            if self.is_expired(job, finished):
                return self.expire(job, finished, looked_up=record("not_found"))
            return record("not_found")
        return self._check_failed(job, result, finished, record)

    def listings_settled_at(self, job: Job, sent_by: datetime | None = None) -> datetime:
        """From when a look-up that finds nothing can be trusted: ``listing_settle_s`` after
        the post, if any, was made. That is no later than the end of the uncertain send
        (``sent_by``: its answer lost, its engine stopped or dead): a publish may make several
        calls before the one that creates the post (Instagram's container and its polls,
        photo and image uploads), long after the ``publishing`` mark (``check_since``), the
        bound used only when the send's end is unknown."""
        made_by = sent_by or job.delivery.check_since
        if made_by is None:
            return datetime.min.replace(tzinfo=UTC)
        return made_by + timedelta(seconds=self.settings.listing_settle_s)

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
        if unsent(exc):
            not_sent = record(NOT_SENT, message)
            t = self._unconfirmed(
                job, next_attempt_at=self._soon(now), error=message, attempt=not_sent
            )
            return Decision(t, NOT_SENT, "delivery.check_not_sent")
        checked = record("check_failed", message)
        give_up = (
            isinstance(exc, ReconcileUnsupported) or delivery.checks + 1 >= self.settings.max_checks
        )
        if give_up:
            error = f"could not confirm whether the post exists: {message}"
            return self._needs_decision(job, error, checked, check_failed=True)
        delay = max(self._backoff(delivery.checks + 1), self.settings.check_delay_s)
        t = self._unconfirmed(
            job,
            next_attempt_at=now + timedelta(seconds=delay),
            check_failed=True,
            error=message,
            attempt=checked,
        )
        return Decision(t, "check_retry", "delivery.check_retry")
