"""The RateLimiter contract on the memory limiter (tests/suites/limiter_contract.py)."""

from __future__ import annotations

from tests.suites.limiter_contract import LimiterContract


class TestLimiterContract(LimiterContract):
    pass
