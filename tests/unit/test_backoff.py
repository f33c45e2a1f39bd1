import random

import pytest

from herald.backoff import ceiling, full_jitter


def test_ceiling_doubles_then_caps():
    assert [ceiling(n, base_s=2, cap_s=60) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_ceiling_survives_huge_retry_numbers():
    assert ceiling(10_000, base_s=1, cap_s=900) == 900


def test_retry_numbers_start_at_one():
    with pytest.raises(ValueError, match="start at 1"):
        ceiling(0, base_s=1, cap_s=10)


def test_full_jitter_stays_within_zero_and_ceiling_and_spreads():
    rng = random.Random(7)
    draws = [full_jitter(4, base_s=2, cap_s=900, rng=rng) for _ in range(2000)]
    assert all(0 <= d <= 16 for d in draws)
    # Full jitter is uniform: a quarter of the draws fall in each quarter of the range.
    quarters = [sum(1 for d in draws if q * 4 <= d < (q + 1) * 4) for q in range(4)]
    assert all(400 < n < 600 for n in quarters), quarters
