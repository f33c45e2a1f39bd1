"""The engine face of the store contract on PostgreSQL (tests/suites/store_contract.py)."""

from __future__ import annotations

import pytest

from tests.suites.store_contract import StoreContract

pytestmark = pytest.mark.postgres


class TestStoreContractOnPostgres(StoreContract):
    pass
