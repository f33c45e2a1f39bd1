"""What only the memory limiter does (GCRA pacing, late grants slotted in time order), and each
engine's share of a limit. What every limiter does is in tests/suites/limiter_contract.py."""

import math

from herald.limits.memory import MemoryLimiter
from herald.limits.rules import LimitRule, Pacing
from tests.suites.limiter_contract import claim, rolling


async def test_gcra_paces_after_the_burst():
    rule = LimitRule("pace", "calls", "app", Pacing(rate_per_s=10.0, burst=2))
    limiter = MemoryLimiter()
    assert await limiter.reserve([claim(rule)], 0.0) == 0.0
    assert await limiter.reserve([claim(rule)], 0.0) == 0.0
    assert math.isclose(await limiter.reserve([claim(rule)], 0.0), 0.1)
    assert await limiter.reserve([claim(rule)], 0.1) == 0.0


async def test_replay_sets_the_gcra_arrival_time():
    rule = LimitRule("pace", "calls", "app", Pacing(rate_per_s=10.0, burst=2))
    limiter = MemoryLimiter()
    await limiter.replay([claim(rule)], 0.0)
    await limiter.replay([claim(rule)], 0.0)
    assert math.isclose(await limiter.reserve([claim(rule)], 0.05), 0.05)
    assert await limiter.reserve([claim(rule)], 0.1) == 0.0


async def test_a_grant_replayed_late_keeps_the_log_in_time_order():
    limiter, rule = MemoryLimiter(), rolling(2, 10.0)
    assert await limiter.reserve([claim(rule)], 5.0) == 0.0
    await limiter.replay([claim(rule)], 1.0)
    # Full; the oldest grant is the replayed one (t=1): room at t=11, not at t=15.
    assert await limiter.reserve([claim(rule)], 6.0) == 5.0
    assert await limiter.reserve([claim(rule)], 11.0) == 0.0


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
