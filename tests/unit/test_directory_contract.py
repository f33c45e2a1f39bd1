"""The Directory contract on the memory directory (tests/suites/directory_contract.py)."""

from __future__ import annotations

import pytest

from herald.stores.directory_memory import MemoryDirectory
from tests.suites.directory_contract import DirectoryContract


class TestMemoryDirectoryContract(DirectoryContract):
    @pytest.fixture
    async def directory(self):
        return MemoryDirectory()
