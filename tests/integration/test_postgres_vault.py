"""The vault resolver and key rotation over PostgreSQL (tests/suites/vault.py)."""

from __future__ import annotations

import pytest

from tests.suites.vault import VaultSuite

pytestmark = pytest.mark.postgres


class TestVaultOnPostgres(VaultSuite):
    pass
