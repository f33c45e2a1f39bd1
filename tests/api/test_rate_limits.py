"""Per-key request rate limits: one tenant's burst is its own (429 with Retry-After), and
every answer tells the client where it stands (RateLimit-* headers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from herald.api.app import create_app
from herald.api.key_limits import KeyRateLimits
from herald.platforms.rules import VALIDATORS
from tests.api.conftest import Tenant, _tenant, assert_problem


@pytest.fixture
async def limited(settings, api_store) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a budget of 3 requests at once, one more every 100 s (a slow machine's
    pauses never refill it during the test), per key."""
    api = settings.api.model_copy(update={"key_requests_per_s": 0.01, "key_burst": 3})
    app = create_app(settings.model_copy(update={"api": api}), api_store, validators=VALIDATORS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
        yield c


async def test_a_key_over_its_budget_gets_429_and_another_key_is_untouched(limited, api_store):
    acme: Tenant = await _tenant(api_store, limited, "Acme")
    rival: Tenant = await _tenant(api_store, limited, "Rival")
    answers = [await acme.get("/v1/channels") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0].headers["ratelimit-limit"] == "3"
    refused = await acme.get("/v1/channels")
    assert_problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
    assert (await rival.get("/v1/channels")).status_code == 200  # its own budget


async def test_requests_without_a_valid_key_are_not_counted_against_one(limited, api_store):
    acme = await _tenant(api_store, limited, "Acme")
    for _ in range(5):
        assert_problem(await limited.get("/v1/channels"), 401)
    assert (await acme.get("/v1/channels")).headers["ratelimit-remaining"] == "2"


def test_the_budget_refills_at_the_steady_rate():
    now = [0.0]
    limits = KeyRateLimits(2.0, 2, clock=lambda: now[0])
    assert [limits.take("k").allowed for _ in range(3)] == [True, True, False]
    refused = limits.take("k")
    assert refused.retry_after_s == pytest.approx(0.5)
    now[0] = 0.5
    assert limits.take("k").allowed
    assert not limits.take("k").allowed
    now[0] = 10.0  # long idle: the whole burst again, never more
    verdict = limits.take("k")
    assert (verdict.allowed, verdict.remaining) == (True, 1)
    assert not KeyRateLimits(0, 5).enabled
