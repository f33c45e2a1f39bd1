"""The CredentialResolver contract on every resolver, the vault's on the memory and SQLite
stores (tests/suites/resolver_contract.py)."""

from __future__ import annotations

import pytest

from tests.suites.resolver_contract import ResolverContract, opened_rig

KINDS = [
    "env",
    "file",
    "vault-memory",
    "vault-sqlite",
    "composite-keyless",
    "composite-memory",
    "static",
]


@pytest.fixture(params=KINDS)
async def resolver_rig(request, tmp_path):
    async with opened_rig(request.param, tmp_path) as rig:
        yield rig


class TestResolverContract(ResolverContract):
    pass
