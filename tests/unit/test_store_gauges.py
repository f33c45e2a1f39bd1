"""The store-wide gauges on the memory and SQLite stores."""

from __future__ import annotations

from tests.suites.store_gauges import StoreGaugesSuite


class TestStoreGauges(StoreGaugesSuite):
    pass
