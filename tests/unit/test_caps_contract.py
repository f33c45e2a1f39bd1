"""The ConcurrencyCaps contract on the memory caps (tests/suites/caps_contract.py)."""

from __future__ import annotations

from tests.suites.caps_contract import CapsContract


class TestMemoryCapsContract(CapsContract):
    pass
