"""The catalog and outbox faces of the store contract on the memory and SQLite stores."""

from __future__ import annotations

from tests.suites.catalog_contract import CatalogContract, ErasureContract


class TestCatalogContract(CatalogContract, ErasureContract):
    pass
