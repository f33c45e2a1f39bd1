"""The engine face of the store contract on the memory and SQLite stores (tests/suites)."""

from __future__ import annotations

from tests.suites.store_contract import StoreContract


class TestStoreContract(StoreContract):
    pass
