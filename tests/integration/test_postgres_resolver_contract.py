"""The CredentialResolver contract for the vault's resolvers on PostgreSQL
(tests/suites/resolver_contract.py)."""

from __future__ import annotations

import pytest

from tests.conftest import needs_server
from tests.suites.resolver_contract import ResolverContract, opened_rig

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["vault-postgres", "composite-postgres"])
async def resolver_rig(request, tmp_path):
    needs_server(request, "postgres")
    async with opened_rig(request.param, tmp_path) as rig:
        yield rig


class TestResolverContractOnPostgres(ResolverContract):
    pass
