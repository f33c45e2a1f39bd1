"""The CSV import face of the store contract on the memory and SQLite stores."""

from __future__ import annotations

from tests.suites.import_contract import ImportContract


class TestImportContract(ImportContract):
    pass
