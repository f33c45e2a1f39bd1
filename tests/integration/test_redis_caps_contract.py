"""The ConcurrencyCaps contract (tests/suites/caps_contract.py) on the Redis caps."""

from __future__ import annotations

import pytest

from tests.suites.caps_contract import CapsContract

pytestmark = pytest.mark.redis


class TestRedisCapsContract(CapsContract):
    pass
