"""The outbox's fairness, failure record and kept events on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from herald.constants import PLATFORM_VERSION_RETIRING
from herald.domain import Platform
from tests.suites.outbox_contract import OutboxContract, Tenant, later, version_event

pytestmark = pytest.mark.postgres


class TestOutboxContractOnPostgres(OutboxContract):
    pass


async def test_engines_warning_at_the_same_moment_record_a_version_once(pg_stores):
    # A deploy starts a fleet's engines together: each warns of the retiring version at once,
    # on its own connection. The webhook must still hear of it once that day.
    engines = [await pg_stores.open(pool_size=1) for _ in range(4)]
    tenant = await Tenant.made(engines[0], "A")
    await tenant.webhook(events=(PLATFORM_VERSION_RETIRING,))
    at, fb = later(), Platform.FACEBOOK
    for version in ("v21.0", "v22.0", "v23.0", "v24.0", "v25.0"):
        payload = version_event(fb, version)
        recorded = await asyncio.gather(
            *(s.record_platform_event(fb, PLATFORM_VERSION_RETIRING, payload, at) for s in engines)
        )
        assert sum(recorded) == 1, (version, recorded)
