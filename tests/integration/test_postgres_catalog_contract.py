"""The catalog and outbox faces of the store contract on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.suites.catalog_contract import CatalogContract, ErasureContract

pytestmark = pytest.mark.postgres


class TestCatalogContractOnPostgres(CatalogContract, ErasureContract):
    pass
