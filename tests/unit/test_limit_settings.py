"""Where limits are kept: memory unless asked, Redis only with a URL that names one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from herald.bootstrap import open_limiter
from herald.config import LimitSettings, Settings
from herald.limits.redis import RedisLimiter


def test_limits_stay_in_memory_by_default():
    assert Settings().limits.backend == "memory"
    assert open_limiter(Settings()) is None


def test_redis_needs_a_url_that_names_a_redis():
    with pytest.raises(ValidationError, match=r"needs limits\.redis_url"):
        LimitSettings(backend="redis")
    with pytest.raises(ValidationError, match="must start with redis://"):
        LimitSettings(backend="redis", redis_url="http://127.0.0.1:6379")


def test_the_environment_chooses_redis(monkeypatch):
    monkeypatch.setenv("HERALD_LIMITS__BACKEND", "redis")
    monkeypatch.setenv("HERALD_LIMITS__REDIS_URL", "redis://127.0.0.1:6390/2")
    monkeypatch.setenv("HERALD_LIMITS__REDIS_PREFIX", "herald:v1:limits:eu")
    limiter = open_limiter(Settings())
    # Built, not connected: the first admission (or the start-up rebuild) connects.
    assert isinstance(limiter, RedisLimiter)
    assert limiter.prefix == "herald:v1:limits:eu"
