"""The RateLimiter contract (tests/suites/limiter_contract.py) on the Redis limiter."""

from __future__ import annotations

import pytest

from tests.suites.limiter_contract import LimiterContract

pytestmark = pytest.mark.redis


class TestRedisLimiterContract(LimiterContract):
    pass
