"""The store-wide gauges on PostgreSQL."""

from __future__ import annotations

import pytest

from tests.suites.store_gauges import StoreGaugesSuite

pytestmark = pytest.mark.postgres


class TestStoreGaugesOnPostgres(StoreGaugesSuite):
    pass
