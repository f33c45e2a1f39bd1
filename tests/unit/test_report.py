"""The judge of demo and benchmark runs: lost, duplicates, misrecorded, deferred."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from herald.demo.judge import judge, percentile
from herald.demo.workload import PlannedDelivery, tag_of
from herald.domain import Delivery, Platform, utcnow
from herald.simulator import PostRecord
from herald.states import DeliveryState
from herald.testing import channel

S = DeliveryState
NOW = utcnow()


def setup(n=4):
    ch = channel(Platform.FACEBOOK, external_id="page1")
    planned = [PlannedDelivery(f"dlv_{i}", i, ch) for i in range(n)]
    deliveries = {
        p.delivery_id: Delivery(
            p.delivery_id,
            f"post_{i}",
            ch.id,
            Platform.FACEBOOK,
            NOW,
            state=S.PUBLISHED,
            external_id=f"x{i}",
            published_at=NOW + timedelta(seconds=i),
        )
        for i, p in enumerate(planned)
    }
    posts = [
        PostRecord(Platform.FACEBOOK, "page1", f"x{i}", f"text {tag_of(i)}", 0.0, True)
        for i in range(n)
    ]
    return planned, deliveries, posts


def run(planned, deliveries, posts, violations=()):
    return judge(
        len(planned),
        planned,
        deliveries,
        posts,
        list(violations),
        elapsed_s=5.0,
        settled_at=NOW + timedelta(minutes=2),
    )


def test_a_clean_run():
    summary = run(*setup())
    assert (summary.published, summary.lost, summary.duplicates, summary.misrecorded) == (
        4,
        0,
        0,
        0,
    )
    assert summary.ok
    assert summary.drain_s == 3.0
    assert summary.lateness_p99_s > summary.lateness_p50_s


def test_published_but_not_on_the_platform_is_lost():
    planned, deliveries, posts = setup()
    summary = run(planned, deliveries, posts[1:])
    assert summary.lost == 1
    assert not summary.ok


def test_a_post_held_twice_is_a_duplicate_and_a_stranger_too():
    planned, deliveries, posts = setup()
    stranger = PostRecord(Platform.FACEBOOK, "page1", "y", "not from this run", 0.0, True)
    summary = run(planned, deliveries, [*posts, posts[0], stranger])
    assert summary.duplicates == 2


def test_failed_but_on_the_platform_is_misrecorded():
    planned, deliveries, posts = setup()
    deliveries["dlv_0"] = replace(deliveries["dlv_0"], state=S.FAILED)
    summary = run(planned, deliveries, posts)
    assert (summary.failed, summary.misrecorded) == (1, 1)
    assert not summary.ok


def test_unfinished_is_lost_deferred_is_not():
    planned, deliveries, posts = setup()
    deliveries["dlv_0"] = replace(deliveries["dlv_0"], state=S.RETRY_WAIT, next_attempt_at=NOW)
    deliveries["dlv_1"] = replace(
        deliveries["dlv_1"], state=S.SCHEDULED, next_attempt_at=NOW + timedelta(hours=20)
    )
    summary = run(planned, deliveries, posts[2:])
    assert (summary.unfinished, summary.deferred, summary.lost) == (1, 1, 1)


def test_a_look_up_waiting_for_a_quota_window_is_deferred_not_lost():
    planned, deliveries, posts = setup()
    later = NOW + timedelta(hours=1)
    for i in (0, 1):  # its send landed or not: the look-up will tell
        deliveries[f"dlv_{i}"] = replace(
            deliveries[f"dlv_{i}"], state=S.UNCONFIRMED, check_first=True, next_attempt_at=later
        )
    summary = run(planned, deliveries, posts[1:])
    assert (summary.deferred, summary.unfinished, summary.lost) == (2, 0, 0)


def test_unconfirmed_waiting_for_the_user_is_counted_apart():
    planned, deliveries, posts = setup()
    deliveries["dlv_0"] = replace(deliveries["dlv_0"], state=S.UNCONFIRMED, next_attempt_at=None)
    summary = run(planned, deliveries, posts[1:])
    assert (summary.unconfirmed, summary.lost) == (1, 0)


def test_violations_fail_the_run():
    from herald.simulator import Violation

    planned, deliveries, posts = setup()
    summary = run(
        planned, deliveries, posts, [Violation(Platform.FACEBOOK, "page1", "page_calls", 0.0)]
    )
    assert summary.limit_violations == 1
    assert not summary.ok


def test_refused_requests_are_counted_apart_and_do_not_fail_the_run():
    planned, deliveries, posts = setup()
    summary = judge(
        len(planned),
        planned,
        deliveries,
        posts,
        [],
        elapsed_s=5.0,
        settled_at=NOW + timedelta(minutes=2),
        refused=7,
    )
    assert (summary.limit_violations, summary.refused) == (0, 7)  # "0 violations, 7 refused"
    assert summary.as_dict()["refused"] == 7
    assert summary.ok


def test_a_resend_the_platform_refused_as_a_repeat_is_a_duplicate():
    # Every delivery's text is its own: a refused repeat was a resend, caught by the
    # platform's duplicate check this time, by luck.
    planned, deliveries, posts = setup()
    summary = judge(
        len(planned),
        planned,
        deliveries,
        posts,
        [],
        elapsed_s=5.0,
        settled_at=NOW + timedelta(minutes=2),
        refused_repeats=1,
    )
    assert summary.duplicates == 1
    assert not summary.ok


def test_percentile_interpolates():
    assert percentile([], 0.5) == 0.0
    assert percentile([3.0], 0.99) == 3.0
    assert percentile([0.0, 10.0], 0.5) == 5.0
    assert percentile(list(range(101)), 0.99) == 99.0
