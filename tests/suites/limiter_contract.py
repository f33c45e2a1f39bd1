"""The RateLimiter contract: every limiter (memory today, a shared one next) passes these tests.

Exact against rolling windows (never a token bucket), calendar quotas in their zone, margins,
all or nothing across the claims of one reservation, refunds of refundable rules only, replay
of an earlier run's grants, pauses, rebuilding. A tier provides its limiters through a
``new_limiter`` fixture: an async function of no arguments that makes a limiter with no grants
and no pauses, rebuilt (ready to admit; the property test needs a fresh one per example),
parametrized over the kinds it runs on; ``tests.conftest.limiter_maker`` builds each kind.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.limits.rules import CalendarQuota, LimitClaim, LimitRule, Pacing, RollingWindow
from herald.types import RateLimiter


def rolling(limit, window_s, margin_s=0.0):
    return LimitRule("r", "calls", "channel", RollingWindow(limit, window_s, margin_s))


def daily(limit, timezone="UTC", margin_s=0.0, refundable=False):
    return LimitRule(
        "d", "posts", "channel", CalendarQuota(limit, timezone, margin_s), refundable=refundable
    )


def claim(rule, cost=1, key="k"):
    return LimitClaim(key, rule, cost)


def ts(*args, tz=UTC):
    return datetime(*args, tzinfo=tz).timestamp()


class LimiterContract:
    """Runs on every limiter a tier provides (its ``new_limiter`` fixture)."""

    @pytest.fixture
    async def limiter(self, new_limiter):
        return await new_limiter()

    async def test_is_a_rate_limiter(self, limiter):
        assert isinstance(limiter, RateLimiter)

    # -- rolling windows ----------------------------------------------------------------------
    async def test_rolling_window_admits_exactly_limit_then_waits_for_the_oldest(self, limiter):
        rule = rolling(3, 10.0)
        for t in (0.0, 1.0, 2.0):
            assert await limiter.reserve([claim(rule)], t) == 0.0
        # The fourth must wait until the grant at t=0 leaves the window.
        assert await limiter.reserve([claim(rule)], 5.0) == 5.0
        assert await limiter.reserve([claim(rule)], 10.0) == 0.0

    async def test_rolling_window_is_not_a_token_bucket(self, limiter):
        # A bucket of 3 refilling at 3/10 s would admit a 4th request at t=3.4; a rolling
        # window of 3 per 10 s must not, or the platform sees 4 in one window.
        rule = rolling(3, 10.0)
        for _ in range(3):
            assert await limiter.reserve([claim(rule)], 0.0) == 0.0
        assert await limiter.reserve([claim(rule)], 3.4) > 0

    async def test_reservations_made_together_each_count(self, limiter):
        """A worker admits a lane's ready jobs at once (a shared limiter sends them in one
        round trip): each is checked after those before it, in the order they were made."""
        rule = rolling(3, 10.0)
        waits = await asyncio.gather(
            *(
                limiter.reserve([claim(rule), claim(rolling(9, 10.0), key=f"o{n}")], 1.0)
                for n in range(5)
            )
        )
        assert waits == [0.0, 0.0, 0.0, 10.0, 10.0]
        assert await limiter.reserve([claim(rule)], 11.0) == 0.0

    async def test_reservations_made_together_each_keep_their_own_claims_and_pauses(self, limiter):
        """Reservations of different shapes made at once (a shared limiter sends them in one
        call of its script): each is checked against its own claims, days and pauses, whole,
        after those before it."""
        at = ts(2026, 3, 1) - 1.0  # with a 10 s margin, a grant counts on both days
        day = daily(2, margin_s=10.0)
        pace = LimitRule("p", "calls", "app", Pacing(rate_per_s=1.0, burst=1))
        await limiter.block("paused", at + 5.0)
        waits = await asyncio.gather(
            limiter.reserve([claim(day, key="d")], at),
            limiter.reserve([claim(pace, key="p")], at, pauses=["paused"]),  # paused: nothing
            limiter.reserve([claim(day, key="d"), claim(pace, key="p")], at, pauses=["free"]),
            limiter.reserve([claim(pace, key="p")], at),  # paced after the one before
            limiter.reserve([claim(day, key="d")], at),  # both days full
            limiter.reserve([claim(rolling(1, 10.0), key="r")], at, pauses=["free", "paused"]),
        )
        assert waits == [0.0, 5.0, 0.0, 1.0, ts(2026, 3, 2) + 10.0 - at, 5.0]
        assert await limiter.reserve([claim(rolling(1, 10.0), key="r")], at + 5.0) == 0.0

    async def test_margin_extends_the_window(self, limiter):
        rule = rolling(1, 10.0, margin_s=2.0)
        assert await limiter.reserve([claim(rule)], 0.0) == 0.0
        assert await limiter.reserve([claim(rule)], 10.5) == 1.5

    async def test_costs_above_one_wait_for_enough_room(self, limiter):
        rule = rolling(5, 10.0)
        assert await limiter.reserve([claim(rule, 2)], 0.0) == 0.0
        assert await limiter.reserve([claim(rule, 2)], 1.0) == 0.0
        # 4 of 5 used; a cost of 3 needs the first grant (2 units) gone: it leaves at t=10.
        assert await limiter.reserve([claim(rule, 3)], 2.0) == 8.0

    async def test_keys_are_counted_apart(self, limiter):
        rule = rolling(1, 10.0)
        assert await limiter.reserve([claim(rule, key="a")], 0.0) == 0.0
        assert await limiter.reserve([claim(rule, key="b")], 0.0) == 0.0
        assert await limiter.reserve([claim(rule, key="a")], 0.0) == 10.0

    async def test_a_claim_larger_than_its_limit_can_never_fit(self, limiter):
        assert math.isinf(await limiter.reserve([claim(rolling(3, 10.0), 4)], 0.0))
        assert math.isinf(await limiter.reserve([claim(daily(2), 3, key="d")], 0.0))
        # Nor can a reservation holding one, and nothing else of it is recorded.
        loose = rolling(1, 10.0)
        both = [claim(loose, key="loose"), claim(rolling(1, 10.0), 2, key="never")]
        assert math.isinf(await limiter.reserve(both, 0.0))
        assert await limiter.reserve([claim(loose, key="loose")], 0.0) == 0.0

    async def test_all_or_nothing_across_claims(self, limiter):
        tight, loose = rolling(1, 10.0), rolling(100, 10.0)
        assert await limiter.reserve([claim(tight, key="a")], 0.0) == 0.0
        assert await limiter.reserve([claim(loose, key="b"), claim(tight, key="a")], 1.0) > 0
        # Nothing was recorded on "b" by the refused reservation: 100 still fit there.
        for _ in range(100):
            assert await limiter.reserve([claim(loose, key="b")], 2.0) == 0.0
        assert await limiter.reserve([claim(loose, key="b")], 2.0) > 0

    async def test_the_wait_is_the_longest_of_the_claims(self, limiter):
        short, long = rolling(1, 5.0), rolling(1, 50.0)
        await limiter.reserve([claim(short, key="s"), claim(long, key="l")], 0.0)
        assert await limiter.reserve([claim(short, key="s"), claim(long, key="l")], 1.0) == 49.0

    @settings(
        max_examples=200,
        deadline=None,
        # new_limiter makes a fresh limiter per example: nothing carries over between them.
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        # Quarters of a second are exact in binary floating point, so boundaries are exact too.
        limit=st.integers(1, 8),
        window=st.integers(4, 200).map(lambda q: q / 4),
        gaps=st.lists(st.integers(0, 40).map(lambda q: q / 4), min_size=1, max_size=80),
    )
    async def test_rolling_window_never_exceeded_and_never_refuses_needlessly(
        self, new_limiter, limit, window, gaps
    ):
        limiter, rule = await new_limiter(), rolling(limit, window)
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

    # -- calendar quotas ----------------------------------------------------------------------
    async def test_calendar_quota_resets_at_midnight_in_its_zone(self, limiter):
        rule = daily(2, "America/Los_Angeles")
        # 2026-07-01 23:00 PDT is 06:00 UTC on 07-02.
        late_evening = ts(2026, 7, 2, 6, 0)
        assert await limiter.reserve([claim(rule)], late_evening) == 0.0
        assert await limiter.reserve([claim(rule)], late_evening) == 0.0
        wait = await limiter.reserve([claim(rule)], late_evening)
        assert math.isclose(wait, 3600.0, abs_tol=1e-3)  # until 00:00 PDT = 07:00 UTC
        assert await limiter.reserve([claim(rule)], late_evening + 3600.0) == 0.0

    async def test_calendar_quota_day_length_follows_dst(self, limiter):
        # The night DST ends in Los Angeles (2026-11-01) lasts 25 hours: midnight is 08:00 UTC.
        rule = daily(1, "America/Los_Angeles")
        now = ts(2026, 11, 1, 12, 0)  # 04:00 PST on Nov 1
        assert await limiter.reserve([claim(rule)], now) == 0.0
        assert math.isclose(await limiter.reserve([claim(rule)], now), ts(2026, 11, 2, 8, 0) - now)

    async def test_calendar_margin_counts_grants_near_midnight_against_both_days(self, limiter):
        rule = daily(1, margin_s=5.0)
        just_before = ts(2026, 7, 1, 23, 59, 58)
        assert await limiter.reserve([claim(rule)], just_before) == 0.0
        # The platform may count that grant on July 2: July 2 is full too, until 00:00:05 July 3.
        wait = await limiter.reserve([claim(rule)], ts(2026, 7, 2, 12, 0))
        assert math.isclose(wait, ts(2026, 7, 3, 0, 0, 5) - ts(2026, 7, 2, 12, 0))

    # -- pacing (GCRA) -------------------------------------------------------------------------
    async def test_pacing_admits_its_burst_then_one_per_interval(self, limiter):
        rule = LimitRule("p", "calls", "app", Pacing(rate_per_s=1.0, burst=2))
        assert await limiter.reserve([claim(rule)], 0.0) == 0.0
        assert await limiter.reserve([claim(rule)], 0.0) == 0.0
        assert await limiter.reserve([claim(rule)], 0.0) == 1.0
        assert await limiter.reserve([claim(rule)], 1.0) == 0.0
        assert await limiter.reserve([claim(rule)], 1.5) == 0.5
        assert math.isinf(await limiter.reserve([claim(rule, 3)], 10.0))  # above its burst

    # -- pauses -------------------------------------------------------------------------------
    async def test_pauses_block_every_reservation_until_they_end(self, limiter):
        rule = rolling(100, 10.0)
        await limiter.block("facebook:pause:app", 50.0)
        assert await limiter.reserve([claim(rule)], 20.0, pauses=["facebook:pause:app"]) == 30.0
        assert await limiter.reserve([claim(rule)], 20.0, pauses=["facebook:pause:other"]) == 0.0
        assert await limiter.reserve([claim(rule)], 50.0, pauses=["facebook:pause:app"]) == 0.0

    async def test_a_paused_reservation_records_nothing(self, limiter):
        rule = rolling(1, 10.0)
        await limiter.block("pause", 5.0)
        assert await limiter.reserve([claim(rule)], 1.0, pauses=["pause"]) == 4.0
        assert await limiter.reserve([claim(rule)], 1.0) == 0.0

    async def test_block_never_shortens_an_existing_pause(self, limiter):
        await limiter.block("k", 100.0)
        await limiter.block("k", 10.0)
        assert await limiter.reserve([], 0.0, pauses=["k"]) == 100.0

    # -- refunds ------------------------------------------------------------------------------
    async def test_refund_gives_back_units_of_refundable_rules_only(self, limiter):
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

    async def test_refund_gives_back_that_grant_only(self, limiter):
        rule = LimitRule("p", "publishes", "channel", RollingWindow(2, 100.0), refundable=True)
        assert await limiter.reserve([claim(rule)], 10.0) == 0.0
        assert await limiter.reserve([claim(rule)], 20.0) == 0.0
        await limiter.refund([claim(rule)], 10.0)
        assert await limiter.reserve([claim(rule)], 30.0) == 0.0
        # Full again: the grant at t=20 is still counted, so the next room is at t=120.
        assert await limiter.reserve([claim(rule)], 40.0) == 80.0

    async def test_refund_of_a_calendar_quota(self, limiter):
        rule = daily(1, refundable=True)
        now = ts(2026, 7, 1, 12, 0)
        assert await limiter.reserve([claim(rule)], now) == 0.0
        await limiter.refund([claim(rule)], now)
        assert await limiter.reserve([claim(rule)], now + 1) == 0.0

    async def test_a_request_that_never_left_gives_back_every_unit(self, limiter):
        every_call = LimitRule("calls", "calls", "channel", RollingWindow(1, 100.0))
        day = daily(1)
        claims = [LimitClaim("a", every_call, 1), LimitClaim("b", day, 1)]
        now = ts(2026, 7, 1, 12, 0)
        assert await limiter.reserve(claims, now) == 0.0
        await limiter.refund(claims, now, unsent=True)
        # The platform counted nothing: neither the every-call nor the daily quota keeps it.
        assert await limiter.reserve(claims, now + 1) == 0.0

    # -- replay: grants of an earlier run, recorded without checking --------------------------
    async def test_replayed_grants_fill_a_rolling_window_like_live_ones(self, limiter):
        rule = rolling(3, 10.0, margin_s=1.0)
        for t in (0.0, 1.0, 2.0):
            await limiter.replay([claim(rule)], t)
        assert await limiter.reserve([claim(rule)], 5.0) == 6.0  # the grant at t=0 leaves at 11
        assert await limiter.reserve([claim(rule)], 11.0) == 0.0

    async def test_replay_records_without_checking(self, limiter):
        # An earlier run may have been granted more than this one's rules allow (they changed):
        # every replayed unit counts, and the window stays full until enough of them leave it.
        rule = rolling(2, 10.0)
        for t in (0.0, 1.0, 2.0):
            await limiter.replay([claim(rule)], t)
        assert await limiter.reserve([claim(rule)], 3.0) == 8.0  # two must leave: t=1 at 11

    async def test_replay_counts_the_days_of_the_grant_with_the_margin_rule(self, limiter):
        rule = daily(1, margin_s=5.0)
        await limiter.replay([claim(rule)], ts(2026, 7, 1, 23, 59, 58))
        # Counted against July 1 and July 2: full until 00:00:05 on July 3.
        wait = await limiter.reserve([claim(rule)], ts(2026, 7, 2, 12, 0))
        assert math.isclose(wait, ts(2026, 7, 3, 0, 0, 5) - ts(2026, 7, 2, 12, 0))
        assert await limiter.reserve([claim(rule)], ts(2026, 7, 3, 0, 0, 5)) == 0.0

    # -- rebuild: what an engine does as it starts, and after a shared limiter lost its state --
    async def test_rebuild_replays_the_earlier_grants_once(self, new_limiter):
        limiter, rule = await new_limiter(rebuilt=False), rolling(2, 10.0)
        calls = []

        async def earlier():
            calls.append(1)
            return [(0.0, [claim(rule)]), (1.0, [claim(rule)])]

        assert await limiter.rebuild(earlier) == 2
        assert await limiter.reserve([claim(rule)], 2.0) == 8.0  # full until t=0 leaves
        # Rebuilt: it keeps its state, and never reads the store again for it.
        assert await limiter.rebuild(earlier) is None
        assert calls == [1]
        assert await limiter.reserve([claim(rule)], 10.0) == 0.0

    async def test_replay_sets_the_gcra_arrival_time(self, limiter):
        rule = LimitRule("pace", "calls", "app", Pacing(rate_per_s=10.0, burst=2))
        await limiter.replay([claim(rule)], 0.0)
        await limiter.replay([claim(rule)], 0.0)
        assert math.isclose(await limiter.reserve([claim(rule)], 0.05), 0.05)
        assert await limiter.reserve([claim(rule)], 0.1) == 0.0

    async def test_a_grant_replayed_late_keeps_the_log_in_time_order(self, limiter):
        rule = rolling(2, 10.0)
        assert await limiter.reserve([claim(rule)], 5.0) == 0.0
        await limiter.replay([claim(rule)], 1.0)
        # Full; the oldest grant is the replayed one (t=1): room at t=11, not at t=15.
        assert await limiter.reserve([claim(rule)], 6.0) == 5.0
        assert await limiter.reserve([claim(rule)], 11.0) == 0.0

    # -- quota use (herald_quota_used) --------------------------------------------------------
    async def test_quota_use_is_the_busiest_key_of_each_rule_within_its_window(self, limiter):
        rule, other = rolling(10, 10.0), LimitRule("o", "calls", "app", RollingWindow(9, 10.0))
        assert await limiter.reserve([claim(rule, key="facebook:r:a")], 0.0) == 0.0
        assert await limiter.reserve([claim(rule, 2, key="facebook:r:a")], 1.0) == 0.0
        assert (
            await limiter.reserve(
                [claim(rule, key="facebook:r:b"), claim(other, 4, key="facebook:o:app")], 2.0
            )
            == 0.0
        )
        assert await limiter.reserve([claim(rule, 10, key="facebook:r:b")], 3.0) > 0  # refused
        assert limiter.quota_use(5.0) == {("facebook", "r"): 3.0, ("facebook", "o"): 4.0}
        # Once every grant has left its window, nothing is used.
        assert limiter.quota_use(30.0).get(("facebook", "r"), 0.0) == 0.0

    async def test_quota_use_of_a_calendar_quota_and_of_pacing(self, limiter):
        day = daily(5)
        pace = LimitRule("p", "calls", "app", Pacing(rate_per_s=1.0, burst=4))
        now = ts(2026, 7, 1, 12, 0)
        for _ in range(3):
            claims = [claim(day, key="linkedin:d:x"), claim(pace, key="linkedin:p:app")]
            assert await limiter.reserve(claims, now) == 0.0
        used = limiter.quota_use(now)
        assert used[("linkedin", "d")] == 3.0
        assert math.isclose(used[("linkedin", "p")], 3.0)  # three of its burst of four spent
        # Pacing gives its burst back as time passes; the day's count stays until midnight.
        later = limiter.quota_use(now + 1.0)
        assert (later[("linkedin", "d")], round(later[("linkedin", "p")], 6)) == (3.0, 2.0)
        assert limiter.quota_use(ts(2026, 7, 2, 0, 1)).get(("linkedin", "d"), 0.0) == 0.0
