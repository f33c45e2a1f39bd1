"""The Connector contract on the four platforms' connectors, each pointed at the platform
simulator over loopback HTTP (tests/suites/connector_contract.py)."""

from __future__ import annotations

import pytest

from tests.integration.connector_rig import PLATFORMS, opened_rig
from tests.suites.connector_contract import ConnectorContract


@pytest.fixture(params=PLATFORMS, ids=[p.value for p in PLATFORMS])
async def connector_rig(request):
    async with opened_rig(request.param) as rig:
        yield rig


class TestConnectorContract(ConnectorContract):
    pass
