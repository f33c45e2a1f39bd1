"""Replay: what the store says was sent becomes the grants the worker kept, no more, no less."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from herald.domain import Content, Media, MediaKind, Platform, SentRecord
from herald.limits.replay import gives_back, horizon_s, reached, replayed_grants
from herald.limits.rules import CalendarQuota, LimitRule, Pacing, RollingWindow
from herald.testing import FakeConnector, FakePlatform

IG = Platform.INSTAGRAM
T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
PUBLISHES = LimitRule(
    "publishes", "publishes", "channel", RollingWindow(3, 86_400), refundable=True
)
CONTAINERS = LimitRule("containers", "containers", "channel", RollingWindow(400, 86_400))
LOOKUPS = LimitRule("calls", "calls", "app", RollingWindow(200, 3_600))
RULES = {IG: (PUBLISHES, CONTAINERS, LOOKUPS)}


class Connector(FakeConnector):
    """Instagram-like meters: a publish is one publish and one container per media item; a
    look-up is one call."""

    def lookup_usage(self):
        return {"calls": 1}


CONNECTORS = {
    IG: Connector(IG, FakePlatform(), usage=lambda c: {"publishes": 1, "containers": len(c.media)})
}


def sent(delivery, number, minute, outcome, *, items=1, account="ig-1"):
    media = tuple(Media(f"https://cdn.example/{i}.jpg", MediaKind.IMAGE) for i in range(items))
    content = Content(text=f"post {delivery}", media=media)
    at = T0 + timedelta(minutes=minute)
    return SentRecord(delivery, number, IG, account, at, outcome, content)


def costs(records, rules=RULES):
    """(minute, {rule name: cost}) of each grant replayed from ``records``."""
    return [
        ((at - T0.timestamp()) / 60, {c.rule.name: c.cost for c in claims})
        for at, claims in replayed_grants(records, CONNECTORS, rules)
    ]


def test_a_publish_counts_its_content_s_usage_on_its_account():
    (granted,) = replayed_grants([sent("d1", 1, 0, "published", items=3)], CONNECTORS, RULES)
    at, claims = granted
    assert at == T0.timestamp()
    assert {(c.key, c.cost) for c in claims} == {
        ("instagram:publishes:ig-1", 1),
        ("instagram:containers:ig-1", 3),
    }


def test_publishes_that_definitely_failed_keep_only_what_the_worker_kept():
    records = [
        sent("d1", 1, 0, "transient"),
        sent("d2", 1, 1, "rejected"),
        sent("d3", 1, 2, "rate_limited"),
        sent("d4", 1, 3, "auth"),
        sent("d5", 1, 4, "unknown"),
        sent("d6", 2, 5, "duplicate"),
    ]
    # The worker refunded the refundable publish quota of the first four, not the containers.
    assert costs(records) == [
        (0, {"containers": 1}),
        (1, {"containers": 1}),
        (2, {"containers": 1}),
        (3, {"containers": 1}),
        (4, {"publishes": 1, "containers": 1}),
        (5, {"publishes": 1, "containers": 1}),
    ]


def test_look_ups_count_the_look_up_usage():
    records = [
        sent("d1", 1, 0, "unknown"),
        sent("d1", 1, 5, "check_failed"),
        sent("d1", 1, 6, "rate_limited"),  # a throttled look-up: it follows the same send
        sent("d1", 1, 7, "not_found"),
        sent("d1", 2, 8, "published"),
        sent("d2", 3, 9, "found"),
    ]
    publish = {"publishes": 1, "containers": 1}
    assert costs(records) == [
        (0, publish),
        (5, {"calls": 1}),
        (6, {"calls": 1}),
        (7, {"calls": 1}),
        (8, publish),
        (9, {"calls": 1}),
    ]


def test_a_send_without_a_recorded_outcome_counts_once_as_a_publish():
    records = [
        sent("d1", 1, 0, None),  # still on the wire, or abandoned by a stopped engine
        sent("d2", 1, 1, None),
        sent("d2", 1, 2, "unknown"),  # the same send as the line above, with its outcome
        sent("d1", 1, 3, "auth"),  # a look-up of d1's send, refused
    ]
    publish = {"publishes": 1, "containers": 1}
    assert costs(records) == [(0, publish), (2, publish), (3, {"calls": 1})]


def test_a_send_abandoned_by_its_engine_counts_once_whatever_its_look_up_finds():
    records = [
        sent("d1", 1, 0, None),  # publishing when its engine died; unresolved since
        sent("d1", 1, 0, "abandoned"),  # the same send, recorded when it was recovered
        sent("d1", 1, 3, "found"),  # the look-up found the post: one publish, one look-up
        sent("d2", 1, 4, "abandoned"),
        sent("d2", 1, 5, "not_found"),  # not there: sent again; the platform counted both
        sent("d2", 2, 6, "published"),
    ]
    publish = {"publishes": 1, "containers": 1}
    assert costs(records) == [
        (0, publish),
        (3, {"calls": 1}),
        (4, publish),
        (5, {"calls": 1}),
        (6, publish),
    ]


def test_a_look_up_counts_its_further_listing_pages():
    records = [
        sent("d1", 1, 0, "unknown"),
        replace(sent("d1", 1, 1, "rate_limited"), page_usage={"calls": 2}),  # throttled on page 4
        replace(sent("d1", 1, 2, "found"), page_usage={"calls": 1, "units": 1}),
    ]
    assert costs(records) == [
        (0, {"publishes": 1, "containers": 1}),
        (1, {"calls": 3}),
        (2, {"calls": 2}),  # no rule here counts units
    ]


def test_requests_without_a_connector_or_a_counting_rule_are_left_out():
    records = [sent("d1", 1, 0, "published"), sent("d2", 1, 1, "found")]
    assert replayed_grants(records, {}, RULES) == []
    # Nothing counts look-ups here: only the publish is replayed.
    assert costs(records, {IG: (CONTAINERS,)}) == [(0, {"containers": 1})]


def test_grants_come_out_oldest_first():
    records = [sent("d2", 1, 5, "published"), sent("d1", 1, 1, "published")]
    assert [minute for minute, _ in costs(records)] == [1, 5]


def test_requests_that_never_left_count_nothing():
    records = [
        sent("d1", 1, 0, "not_sent"),
        sent("d1", 2, 1, "published"),
        sent("d2", 1, 2, "unknown"),
        sent("d2", 1, 3, "not_sent"),  # its look-up never left either
        sent("d2", 1, 4, "not_found"),
    ]
    publish = {"publishes": 1, "containers": 1}
    assert costs(records) == [(1, publish), (2, publish), (4, {"calls": 1})]
    assert gives_back("not_sent")
    assert not reached("not_sent")
    assert all(reached(o) for o in ("published", "transient", "rate_limited", "unknown", None))


def test_the_worker_s_refund_test():
    assert {o for o in ("rate_limited", "auth", "rejected", "transient") if gives_back(o)} == {
        "rate_limited",
        "auth",
        "rejected",
        "transient",
    }
    for outcome in ("published", "unknown", "duplicate", "abandoned", None):
        assert not gives_back(outcome)


def test_the_horizon_is_the_longest_reach_of_any_rule():
    assert horizon_s([]) == 0.0
    assert horizon_s([PUBLISHES, LOOKUPS]) == 86_400
    margin = LimitRule("r", "calls", "app", RollingWindow(1, 3_600, margin_s=30.0))
    assert horizon_s([margin]) == 3_630
    # A calendar quota needs its zone's current day, and the day before near midnight.
    day = LimitRule("d", "units", "app", CalendarQuota(10, "America/Los_Angeles", 5.0))
    assert horizon_s([LOOKUPS, day]) == 2 * 86_400 + 5.0
    # GCRA: grants older than burst / rate no longer push its arrival time past now.
    assert horizon_s([LimitRule("p", "calls", "app", Pacing(2.0, burst=10))]) == 5.0
