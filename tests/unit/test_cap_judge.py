"""The judge of cap violations, on request records made by hand (herald.demo.cap_judge)."""

from __future__ import annotations

from herald.caps.claims import CapLimits
from herald.demo.cap_judge import cap_violations, most_in_flight
from herald.domain import Platform
from herald.simulator import RequestRecord

FB, LI = Platform.FACEBOOK, Platform.LINKEDIN


def req(at, ended, account="page-1", platform=FB):
    return RequestRecord(at, platform, account, "POST", "/feed", 200, ended=ended)


def test_most_in_flight_counts_overlaps_not_touching_ends():
    assert most_in_flight([]) == 0
    assert most_in_flight([(0, 1), (1, 2), (2, 3)]) == 1  # each ends as the next arrives
    assert most_in_flight([(0, 3), (1, 2), (1.5, 4)]) == 3


def test_a_planted_overlap_on_a_channel_is_caught():
    records = [req(0, 2), req(1, 3), req(5, 6)]  # two at once on page-1 over [1, 2)
    report = cap_violations(records, {FB: CapLimits(channel=1)})
    assert report.violations == 1
    assert report.most["facebook:channel"] == 2


def test_requests_one_after_the_other_are_no_violation():
    records = [req(0, 1), req(1, 2), req(2, 3), req(0, 3, account="page-2")]
    report = cap_violations(records, {FB: CapLimits(channel=1, app=2, cluster=2)})
    assert report.violations == 0
    assert report.most == {"facebook:app": 2, "facebook:channel": 1, "facebook:cluster": 2}


def test_app_and_platform_caps_count_every_channel_of_the_platform():
    records = [req(0, 5, account=f"page-{i}") for i in range(4)] + [req(0, 5, platform=LI)]
    report = cap_violations(records, {FB: CapLimits(app=3, cluster=2)})
    # The 3rd and 4th arrivals pass the cluster cap of 2; the 4th the app cap of 3.
    assert report.violations == 3
    assert report.most["linkedin:cluster"] == 1  # measured, not capped


def test_requests_without_an_end_or_an_account_are_judged_where_they_can_be():
    records = [
        RequestRecord(0, FB, "page-1", "POST", "/feed", 200),  # no end: left out
        req(0, 2, account=None),  # a token refresh: the app's, no channel's
        req(1, 3),
    ]
    report = cap_violations(records, {FB: CapLimits(channel=1, app=1)})
    assert report.violations == 1  # the app cap, by the second arrival
    assert report.most["facebook:channel"] == 1


def test_a_request_the_client_gave_up_on_ends_at_its_timeout():
    # The platform held the first request 4 s; the client timed out after 2 s and freed its
    # slot, then sent the second at 3 s: one at a time, as Herald saw them.
    records = [req(0, 4), req(3, 3.5)]
    assert cap_violations(records, {FB: CapLimits(channel=1)}).violations == 1
    judged = cap_violations(records, {FB: CapLimits(channel=1)}, {FB: 2.0})
    assert judged.violations == 0
    # Past the timeout it still counts: a second request before the first timed out.
    early = [req(0, 4), req(1.5, 3.5)]
    assert cap_violations(early, {FB: CapLimits(channel=1)}, {FB: 2.0}).violations == 1
