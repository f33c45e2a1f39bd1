"""The CSV import face of the store contract on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.suites.import_contract import ImportContract

pytestmark = pytest.mark.postgres


class TestImportContractOnPostgres(ImportContract):
    pass
