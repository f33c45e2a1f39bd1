"""The limiter's arithmetic: exact against rolling windows, calendar days, GCRA, pauses."""

import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from herald.limits.memory import MemoryLimiter
from herald.limits.rules import CalendarQuota, LimitClaim, LimitRule, Pacing, RollingWindow


def rolling(limit, window_s, margin_s=0.0):
    return LimitRule("r", "calls", "channel", RollingWindow(limit, window_s, margin_s))


def claim(rule, cost=1, key="k"):
    return LimitClaim(key, rule, cost)


async def test_rolling_window_admits_exactly_limit_then_waits_for_the_oldest():
    limiter, rule = MemoryLimiter(), rolling(3, 10.0)
    for t in (0.0, 1.0, 2.0):
        assert await limiter.reserve([claim(rule)], t) == 0.0
    # The fourth must wait until the grant at t=0 leaves the window.
    assert await limiter.reserve([claim(rule)], 5.0) == 5.0
    assert await limiter.reserve([claim(rule)], 10.0) == 0.0


async def test_rolling_window_is_not_a_token_bucket():
    # A bucket of 3 refilling at 3/10 s would admit a 4th request at t=3.4; a rolling
    # window of 3 per 10 s must not, or the platform sees 4 in one window.
    limiter, rule = MemoryLimiter(), rolling(3, 10.0)
    for _ in range(3):
        assert await limiter.reserve([claim(rule)], 0.0) == 0.0
    assert await limiter.reserve([claim(rule)], 3.4) > 0


async def test_margin_extends_the_window():
    limiter, rule = MemoryLimiter(), rolling(1, 10.0, margin_s=2.0)
    assert await limiter.reserve([claim(rule)], 0.0) == 0.0
    assert await limiter.reserve([claim(rule)], 10.5) == 1.5


async def test_costs_above_one_wait_for_enough_room():
    limiter, rule = MemoryLimiter(), rolling(5, 10.0)
    assert await limiter.reserve([claim(rule, 2)], 0.0) == 0.0
    assert await limiter.reserve([claim(rule, 2)], 1.0) == 0.0
    # 4 of 5 used; a cost of 3 needs the first grant (2 units) gone: it leaves at t=10.
    assert await limiter.reserve([claim(rule, 3)], 2.0) == 8.0


async def test_a_claim_larger_than_the_limit_can_never_fit():
    limiter = MemoryLimiter()
    assert math.isinf(await limiter.reserve([claim(rolling(3, 10.0), 4)], 0.0))


async def test_all_or_nothing_across_claims():
    limiter = MemoryLimiter()
    tight, loose = rolling(1, 10.0), rolling(100, 10.0)
    assert await limiter.reserve([claim(tight, key="a")], 0.0) == 0.0
    assert await limiter.reserve([claim(loose, key="b"), claim(tight, key="a")], 1.0) > 0
    # Nothing was recorded on "b" by the refused reservation: 100 still fit there.
    for _ in range(100):
        assert await limiter.reserve([claim(loose, key="b")], 2.0) == 0.0
    assert await limiter.reserve([claim(loose, key="b")], 2.0) > 0


@settings(max_examples=200, deadline=None)
@given(
    # Quarters of a second are exact in binary floating point, so boundaries are exact too.
    limit=st.integers(1, 8),
    window=st.integers(4, 200).map(lambda q: q / 4),
    gaps=st.lists(st.integers(0, 40).map(lambda q: q / 4), min_size=1, max_size=80),
)
async def test_rolling_window_never_exceeded_and_never_refuses_needlessly(limit, window, gaps):
    limiter, rule = MemoryLimiter(), rolling(limit, window)
    granted: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        wait = await limiter.reserve([claim(rule)], now)
        in_window = [g for g in granted if g > now - window]
        if wait == 0.0:
            granted.append(now)
            assert len(in_window) + 1 <= limit  # never exceeded
        else:
            assert len(in_window) >= limit  # refused only when really full
            # ... and the wait is exactly until the oldest in-window grant leaves.
            assert math.isclose(now + wait, min(in_window) + window, abs_tol=1e-6)


def ts(*args, tz=UTC):
    return datetime(*args, tzinfo=tz).timestamp()


async def test_calendar_quota_resets_at_midnight_in_its_zone():
    rule = LimitRule("units", "units", "app", CalendarQuota(2, "America/Los_Angeles"))
    limiter = MemoryLimiter()
    # 2026-07-01 23:00 PDT is 06:00 UTC on 07-02.
    late_evening = ts(2026, 7, 2, 6, 0)
    assert await limiter.reserve([claim(rule)], late_evening) == 0.0
    assert await limiter.reserve([claim(rule)], late_evening) == 0.0
    wait = await limiter.reserve([claim(rule)], late_evening)
    assert math.isclose(wait, 3600.0, abs_tol=1e-3)  # until 00:00 PDT = 07:00 UTC
    assert await limiter.reserve([claim(rule)], late_evening + 3600.0) == 0.0


async def test_calendar_quota_day_length_follows_dst():
    # The night DST ends in Los Angeles (2026-11-01) lasts 25 hours: midnight is 08:00 UTC.
    rule = LimitRule("units", "units", "app", CalendarQuota(1, "America/Los_Angeles"))
    limiter = MemoryLimiter()
    now = ts(2026, 11, 1, 12, 0)  # 04:00 PST on Nov 1
    assert await limiter.reserve([claim(rule)], now) == 0.0
    assert math.isclose(await limiter.reserve([claim(rule)], now), ts(2026, 11, 2, 8, 0) - now)


async def test_calendar_margin_counts_grants_near_midnight_against_both_days():
    rule = LimitRule("posts", "posts", "channel", CalendarQuota(1, "UTC", margin_s=5.0))
    limiter = MemoryLimiter()
    just_before = ts(2026, 7, 1, 23, 59, 58)
    assert await limiter.reserve([claim(rule)], just_before) == 0.0
    # The platform may count that grant on July 2: July 2 is full too, until 00:00:05 July 3.
    wait = await limiter.reserve([claim(rule)], ts(2026, 7, 2, 12, 0))
    assert math.isclose(wait, ts(2026, 7, 3, 0, 0, 5) - ts(2026, 7, 2, 12, 0))


async def test_gcra_paces_after_the_burst():
    rule = LimitRule("pace", "calls", "app", Pacing(rate_per_s=10.0, burst=2))
    limiter = MemoryLimiter()
    assert await limiter.reserve([claim(rule)], 0.0) == 0.0
    assert await limiter.reserve([claim(rule)], 0.0) == 0.0
    assert math.isclose(await limiter.reserve([claim(rule)], 0.0), 0.1)
    assert await limiter.reserve([claim(rule)], 0.1) == 0.0


async def test_pauses_block_every_reservation_until_they_end():
    limiter, rule = MemoryLimiter(), rolling(100, 10.0)
    await limiter.block("facebook:pause:app", 50.0)
    assert await limiter.reserve([claim(rule)], 20.0, pauses=["facebook:pause:app"]) == 30.0
    assert await limiter.reserve([claim(rule)], 20.0, pauses=["facebook:pause:other"]) == 0.0
    assert await limiter.reserve([claim(rule)], 50.0, pauses=["facebook:pause:app"]) == 0.0


async def test_block_never_shortens_an_existing_pause():
    limiter = MemoryLimiter()
    await limiter.block("k", 100.0)
    await limiter.block("k", 10.0)
    assert await limiter.reserve([], 0.0, pauses=["k"]) == 100.0


async def test_refund_gives_back_units_of_refundable_rules_only():
    limiter = MemoryLimiter()
    counted = LimitRule(
        "publishes", "publishes", "channel", RollingWindow(1, 100.0), refundable=True
    )
    every_call = LimitRule("calls", "calls", "channel", RollingWindow(1, 100.0))
    claims = [LimitClaim("a", counted, 1), LimitClaim("b", every_call, 1)]
    assert await limiter.reserve(claims, 10.0) == 0.0
    await limiter.refund(claims, 10.0)
    # The success-counted quota is free again; the every-request one is not.
    assert await limiter.reserve([claims[0]], 11.0) == 0.0
    assert await limiter.reserve([claims[1]], 11.0) == 99.0


async def test_a_request_that_never_left_gives_back_every_unit():
    limiter = MemoryLimiter()
    every_call = LimitRule("calls", "calls", "channel", RollingWindow(1, 100.0))
    day = LimitRule("posts", "posts", "channel", CalendarQuota(1, "UTC"))
    claims = [LimitClaim("a", every_call, 1), LimitClaim("b", day, 1)]
    now = ts(2026, 7, 1, 12, 0)
    assert await limiter.reserve(claims, now) == 0.0
    await limiter.refund(claims, now, unsent=True)
    # The platform counted nothing: neither the every-call nor the daily quota keeps it.
    assert await limiter.reserve(claims, now + 1) == 0.0


async def test_refund_of_a_calendar_quota():
    rule = LimitRule("d", "posts", "channel", CalendarQuota(1, "UTC"), refundable=True)
    limiter = MemoryLimiter()
    now = ts(2026, 7, 1, 12, 0)
    assert await limiter.reserve([LimitClaim("k", rule, 1)], now) == 0.0
    await limiter.refund([LimitClaim("k", rule, 1)], now)
    assert await limiter.reserve([LimitClaim("k", rule, 1)], now + 1) == 0.0


# -- replay: grants of an earlier run, recorded without checking ------------------------------
async def test_replayed_grants_fill_a_rolling_window_like_live_ones():
    limiter, rule = MemoryLimiter(), rolling(3, 10.0, margin_s=1.0)
    for t in (0.0, 1.0, 2.0):
        await limiter.replay([claim(rule)], t)
    assert await limiter.reserve([claim(rule)], 5.0) == 6.0  # the grant at t=0 leaves at 11
    assert await limiter.reserve([claim(rule)], 11.0) == 0.0


async def test_replay_records_without_checking():
    # An earlier run may have been granted more than this one's rules allow (they changed):
    # every replayed unit counts, and the window stays full until enough of them leave it.
    limiter, rule = MemoryLimiter(), rolling(2, 10.0)
    for t in (0.0, 1.0, 2.0):
        await limiter.replay([claim(rule)], t)
    assert await limiter.reserve([claim(rule)], 3.0) == 8.0  # two must leave: t=1 at 11


async def test_a_grant_replayed_late_keeps_the_log_in_time_order():
    limiter, rule = MemoryLimiter(), rolling(2, 10.0)
    assert await limiter.reserve([claim(rule)], 5.0) == 0.0
    await limiter.replay([claim(rule)], 1.0)
    # Full; the oldest grant is the replayed one (t=1): room at t=11, not at t=15.
    assert await limiter.reserve([claim(rule)], 6.0) == 5.0
    assert await limiter.reserve([claim(rule)], 11.0) == 0.0


async def test_replay_counts_the_days_of_the_grant_with_the_margin_rule():
    rule = LimitRule("posts", "posts", "channel", CalendarQuota(1, "UTC", margin_s=5.0))
    limiter = MemoryLimiter()
    await limiter.replay([claim(rule)], ts(2026, 7, 1, 23, 59, 58))
    # Counted against July 1 and July 2: full until 00:00:05 on July 3.
    wait = await limiter.reserve([claim(rule)], ts(2026, 7, 2, 12, 0))
    assert math.isclose(wait, ts(2026, 7, 3, 0, 0, 5) - ts(2026, 7, 2, 12, 0))
    assert await limiter.reserve([claim(rule)], ts(2026, 7, 3, 0, 0, 5)) == 0.0


async def test_replay_sets_the_gcra_arrival_time():
    rule = LimitRule("pace", "calls", "app", Pacing(rate_per_s=10.0, burst=2))
    limiter = MemoryLimiter()
    await limiter.replay([claim(rule)], 0.0)
    await limiter.replay([claim(rule)], 0.0)
    assert math.isclose(await limiter.reserve([claim(rule)], 0.05), 0.05)
    assert await limiter.reserve([claim(rule)], 0.1) == 0.0


def test_each_of_several_engines_keeps_to_its_share_of_every_limit():
    from herald.config import EngineSettings, Settings
    from herald.domain import Platform
    from herald.limits.rules import default_rules

    whole = default_rules(Settings())
    half = default_rules(Settings(engine=EngineSettings(limit_share=0.5)))
    ig_whole = {r.name: r.algorithm.limit for r in whole[Platform.INSTAGRAM]}
    ig_half = {r.name: r.algorithm.limit for r in half[Platform.INSTAGRAM]}
    assert ig_whole == {"publishes": 100, "containers": 400}
    assert ig_half == {"publishes": 50, "containers": 200}
    third = default_rules(Settings(engine=EngineSettings(limit_share=1 / 3)))
    # Rounded down: three engines at 33 each never reach 100 together.
    assert {r.name: r.algorithm.limit for r in third[Platform.INSTAGRAM]}["publishes"] == 33
