"""The decisions after each step, pinned down without any I/O."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from herald.config import EngineSettings
from herald.domain import Attempt, ChannelStatus, Content, Delivery, Job, Platform, utcnow
from herald.engine.policy import Decision, Policy, webhook_event
from herald.errors import (
    AuthExpired,
    ContentRejected,
    DuplicateRejected,
    OutcomeUnknown,
    RateLimited,
    ReconcileUnsupported,
    RequestNotSent,
    TransientPlatformError,
)
from herald.states import DeliveryState
from herald.testing import channel
from herald.types import PlatformUsage, Published

S = DeliveryState
NOW = utcnow()


def job(**delivery) -> Job:
    ch = channel(Platform.FACEBOOK)
    base = {
        "id": "dlv_1",
        "post_id": "post_1",
        "channel_id": ch.id,
        "platform": Platform.FACEBOOK,
        "due_at": NOW - timedelta(seconds=5),
        "state": S.CLAIMED,
    }
    base.update(delivery)
    return Job(Delivery(**base), ch, Content(text="hi"), "token-1")


def policy(**settings) -> Policy:
    base = {
        "backoff_base_s": 2.0,
        "backoff_cap_s": 60.0,
        "max_retries": 3,
        "check_delay_s": 5.0,
        "throttle_pause_s": 30.0,
        "max_checks": 3,
        "listing_settle_s": 20.0,
    }
    base.update(settings)
    return Policy(EngineSettings(**base), random.Random(1))


def after(exc, **delivery) -> Decision:
    return policy().after_publish(job(**delivery), NOW, NOW, exc)


def test_published_records_the_platform_id_and_the_attempt():
    d = after(Published("123_456"))
    t = d.transition
    assert (t.target, t.external_id, t.published_at, t.claim_token) == (
        S.PUBLISHED,
        "123_456",
        NOW,
        "token-1",
    )
    assert t.attempt.outcome == "published"
    assert t.attempt.number == 1
    assert d.pauses == ()


def test_usage_at_the_limit_pauses_even_on_success():
    usage = PlatformUsage(app_pct=100, channel_pct=40, regain_after_s=120)
    d = after(Published("1", usage=usage))
    assert d.pauses == (("app", NOW + timedelta(seconds=120)),)
    d = after(Published("1", usage=PlatformUsage(channel_pct=100)))
    assert d.pauses == (("channel", NOW + timedelta(seconds=30)),)


def test_rate_limited_pauses_the_scope_and_spends_no_retry():
    d = after(RateLimited("(#32)", retry_after=90, scope="channel"))
    t = d.transition
    assert (t.target, t.next_attempt_at, t.retry_spent) == (
        S.RETRY_WAIT,
        NOW + timedelta(seconds=90),
        False,
    )
    assert d.pauses == (("channel", NOW + timedelta(seconds=90)),)


def test_rate_limited_without_a_wait_uses_the_configured_pause():
    d = after(RateLimited("429", retry_after=0, scope="app"))
    assert d.pauses == (("app", NOW + timedelta(seconds=30)),)


def test_auth_expired_parks_the_channel():
    d = after(AuthExpired("code 190"))
    assert d.channel_status is ChannelStatus.NEEDS_REAUTH
    assert d.transition.target is S.RETRY_WAIT
    assert not d.transition.retry_spent


def test_rejected_content_fails_for_good():
    d = after(ContentRejected("(#100) invalid parameter"))
    assert d.transition.target is S.FAILED
    assert d.outcome == "failed"


def test_transient_error_retries_within_the_backoff_ceiling():
    for retries in range(3):
        d = after(TransientPlatformError("503"), retries=retries)
        t = d.transition
        assert t.target is S.RETRY_WAIT
        assert t.retry_spent
        delay = (t.next_attempt_at - NOW).total_seconds()
        assert 0 <= delay <= 2.0 * 2**retries


def test_transient_error_fails_once_retries_are_used_up():
    d = after(TransientPlatformError("503"), retries=3)
    assert d.transition.target is S.FAILED
    assert "gave up after 3 retries" in d.transition.error


def assert_not_a_try(d: Decision, target: DeliveryState, check_first: bool | None) -> None:
    """Tried again soon, within the first backoff, and nothing spent."""
    t = d.transition
    assert (d.outcome, t.target, t.check_first) == ("not_sent", target, check_first)
    assert not t.retry_spent
    assert not t.check_failed
    assert t.attempt.outcome == "not_sent"
    assert NOW <= t.next_attempt_at <= NOW + timedelta(seconds=2.0)


@pytest.mark.parametrize("retries", [0, 3])
def test_a_request_that_never_left_is_not_a_try(retries):
    # Retries used up or not: a refused connection spends none, and owes no look-up.
    d = after(RequestNotSent("facebook: request not sent (ClientConnectorError)"), retries=retries)
    assert_not_a_try(d, S.RETRY_WAIT, None)


def test_an_unsent_request_after_others_of_its_publish_left_is_a_retry():
    d = after(RequestNotSent("not sent", partial=True), retries=3)
    assert d.transition.target is S.FAILED
    d = after(RequestNotSent("not sent", partial=True))
    assert (d.outcome, d.transition.retry_spent, d.transition.attempt.outcome) == (
        "retry",
        True,
        "transient",
    )


def test_a_pause_that_began_before_the_request_left_defers_it_unsent():
    d = policy().paused(job(attempts=1), NOW, 45.0)
    t = d.transition
    assert (t.target, t.next_attempt_at, t.attempt, t.retry_spent, t.sent) == (
        S.RETRY_WAIT,
        NOW + timedelta(seconds=45),
        None,
        False,
        False,
    )


@pytest.mark.parametrize("exc", [OutcomeUnknown("timeout"), RuntimeError("bug")])
def test_unknown_outcome_is_checked_later_never_resent(exc):
    d = after(exc)
    t = d.transition
    assert (t.target, t.check_first, t.next_attempt_at) == (
        S.UNCONFIRMED,
        True,
        NOW + timedelta(seconds=5),
    )


def test_duplicate_after_an_earlier_send_is_looked_up_again():
    d = after(DuplicateRejected("(#506)"), attempts=1)
    assert (d.transition.target, d.transition.check_first) == (S.UNCONFIRMED, True)
    assert d.transition.retry_spent


def test_duplicate_on_a_first_send_is_someone_else_s_post():
    assert after(DuplicateRejected("(#506)"), attempts=0).transition.target is S.FAILED


def test_duplicate_that_stays_out_of_sight_is_left_to_the_user():
    d = after(DuplicateRejected("(#506)"), attempts=4, retries=3)
    assert (d.transition.target, d.transition.next_attempt_at) == (S.UNCONFIRMED, None)


def check(result, **delivery):
    base = {"check_first": True, "attempts": 1, "check_since": NOW - timedelta(seconds=30)}
    base.update(delivery)
    return policy().after_check(job(**base), NOW, NOW, result)


def test_check_that_finds_the_post_records_it_as_published():
    d = check(Published("777"))
    t = d.transition
    assert (t.target, t.external_id, t.reconciled, t.check_first) == (
        S.PUBLISHED,
        "777",
        True,
        False,
    )
    assert t.published_at == NOW - timedelta(seconds=30)


def test_check_that_finds_nothing_hands_back_the_record_to_publish_with():
    record = check(None)
    assert not isinstance(record, Decision)
    assert record.outcome == "not_found"


def test_check_that_finds_nothing_before_listings_settle_looks_again_once_they_have():
    sent = NOW - timedelta(seconds=8)  # 8 s after the send; listings settle after 20
    d = check(None, check_since=sent, checks=2)
    assert isinstance(d, Decision)
    t = d.transition
    assert (t.target, t.check_first, t.next_attempt_at) == (
        S.UNCONFIRMED,
        True,
        sent + timedelta(seconds=20),
    )
    assert (t.attempt.outcome, t.check_failed) == ("not_listed_yet", False)
    assert webhook_event(d) is None  # Herald is still on it: nothing for the user yet


def test_a_look_up_started_before_listings_settled_is_not_trusted_even_if_it_ends_after():
    sent = NOW - timedelta(seconds=20)
    d = policy().after_check(
        job(check_first=True, attempts=1, check_since=sent), NOW - timedelta(seconds=1), NOW, None
    )
    assert d.transition.attempt.outcome == "not_listed_yet"


def test_listings_settle_from_the_end_of_the_uncertain_send_when_it_is_known():
    # Marked 30 s ago, but the send (an Instagram container polled for 22 s, say) ended 8 s
    # ago: its post may be only 8 s old, too young for a look-up that misses it to count.
    ended = NOW - timedelta(seconds=8)
    d = policy().after_check(
        job(check_first=True, attempts=1, check_since=NOW - timedelta(seconds=30)),
        NOW,
        NOW,
        None,
        sent_by=ended,
    )
    assert isinstance(d, Decision)
    assert (d.transition.attempt.outcome, d.transition.next_attempt_at) == (
        "not_listed_yet",
        ended + timedelta(seconds=20),
    )


def test_check_that_finds_nothing_too_late_expires():
    d = check(None, due_at=NOW - timedelta(days=2))
    assert d.transition.target is S.EXPIRED


def test_an_early_look_up_that_finds_nothing_does_not_expire_a_post_that_may_exist():
    # Sent 8 s ago, just before the delivery ran out of time: the listing may not show the
    # post yet (it settles after 20 s). Finding nothing proves nothing, so the delivery must
    # not be recorded expired (unsent) while the platform may hold the post: it is looked up
    # again once listings settle, and expired only if that look-up finds nothing.
    sent = NOW - timedelta(seconds=8)
    d = check(None, due_at=NOW - timedelta(days=2), check_since=sent)
    t = d.transition
    assert (t.target, t.attempt.outcome) == (S.UNCONFIRMED, "not_listed_yet")
    assert t.next_attempt_at == sent + timedelta(seconds=20)


def test_failed_check_is_retried_then_left_to_the_user():
    d = check(TransientPlatformError("500"), checks=0)
    assert (d.transition.target, d.transition.check_failed) == (S.UNCONFIRMED, True)
    assert d.transition.next_attempt_at >= NOW + timedelta(seconds=5)
    d = check(TransientPlatformError("500"), checks=2)
    assert (d.transition.target, d.transition.next_attempt_at) == (S.UNCONFIRMED, None)


def test_a_look_up_that_never_left_spends_no_check():
    d = check(RequestNotSent("not sent"), checks=2)  # one more failed check would give up
    assert_not_a_try(d, S.UNCONFIRMED, True)  # the look-up is still owed


def test_unsupported_check_is_left_to_the_user_at_once():
    d = check(ReconcileUnsupported("no listing"))
    assert d.transition.next_attempt_at is None


def test_throttled_check_keeps_the_check_owed():
    d = check(RateLimited("429", retry_after=60, scope="app"))
    assert (d.transition.target, d.transition.check_first) == (S.UNCONFIRMED, True)
    assert d.pauses == (("app", NOW + timedelta(seconds=60)),)


def test_release_keeps_an_owed_check():
    p = policy()
    assert p.release(job(check_first=True), NOW).target is S.UNCONFIRMED
    assert p.release(job(attempts=2), NOW).target is S.RETRY_WAIT
    assert p.release(job(), NOW).target is S.SCHEDULED


def test_a_check_records_the_listing_pages_it_reserved():
    pages, owing = {"calls": 2}, job(check_first=True, attempts=1)
    record = policy().after_check(owing, NOW, NOW, None, page_usage=pages)
    assert not isinstance(record, Decision)
    assert (record.outcome, record.number, record.page_usage) == ("not_found", 1, pages)
    throttled = RateLimited("429", retry_after=60, scope="app")
    attempt = policy().after_check(owing, NOW, NOW, throttled, page_usage=pages).transition.attempt
    assert (attempt.outcome, attempt.page_usage) == ("rate_limited", pages)


def test_a_look_up_that_found_nothing_is_recorded_with_a_release():
    looked_up = check(None)
    t = policy().release(job(attempts=1), NOW, looked_up=looked_up)
    assert (t.target, t.attempt) == (S.RETRY_WAIT, looked_up)


def test_a_job_stopped_with_its_request_on_the_wire_is_abandoned_with_its_send():
    p = policy()
    retry = job(attempts=1, retries=1)
    sending = job(state=S.PUBLISHING, attempts=2, retries=1, check_since=NOW)
    later = NOW + timedelta(seconds=30)
    t = p.hand_back(sending, later, 0.0)
    # Never released for a blind resend: looked up, and its send recorded for the limiter.
    assert (t.target, t.check_first) == (S.UNCONFIRMED, True)
    assert t.attempt == Attempt("dlv_1", 2, NOW, later, "abandoned", t.error)
    # A job with nothing on the wire is released, due again after its delay.
    released = p.hand_back(retry, later, 5.0)
    assert (released.target, released.attempt) == (S.RETRY_WAIT, None)
    assert released.next_attempt_at == later + timedelta(seconds=5)
    # Nothing known to have left (its publishing was being written): looked up, no send.
    assert p.abandoned(retry, later).attempt is None
