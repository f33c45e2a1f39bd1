"""GCRA pacing at fractions of a second on the memory limiter. What every limiter does (late
grants slotted in time order, GCRA replay included) is in tests/suites/limiter_contract.py."""

import math

from herald.limits.memory import MemoryLimiter
from herald.limits.rules import LimitRule, Pacing
from tests.suites.limiter_contract import claim


async def test_gcra_paces_after_the_burst():
    rule = LimitRule("pace", "calls", "app", Pacing(rate_per_s=10.0, burst=2))
    limiter = MemoryLimiter()
    assert await limiter.reserve([claim(rule)], 0.0) == 0.0
    assert await limiter.reserve([claim(rule)], 0.0) == 0.0
    assert math.isclose(await limiter.reserve([claim(rule)], 0.0), 0.1)
    assert await limiter.reserve([claim(rule)], 0.1) == 0.0
