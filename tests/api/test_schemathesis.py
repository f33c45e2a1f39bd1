"""Property-based run of every operation in the OpenAPI schema: no input yields a 5xx.

Schemathesis generates valid and invalid requests from the schema (bounded: a few dozen per
operation) and sends them, with a valid key, to the app on a seeded SQLite store. The example
requests in the schema target channels seeded under the examples' ids, so they succeed.
"""

from __future__ import annotations

from datetime import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from herald.api import create_app
from herald.domain import Channel, Platform, PostingSlot, new_id
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.service.vault import VAULT_REF, Vault
from tests.api.conftest import CREDENTIALS

EXAMPLE_CHANNELS = {
    "ch_019c3f2a8b1e0a1b2c3d4e5f6a7b8c9d": Platform.FACEBOOK,
    "ch_019c3f2a8b1f9f8e7d6c5b4a3f2e1d0c": Platform.YOUTUBE,
}


@pytest.fixture
async def api_schema(settings, api_store):
    issued = await Tenancy(api_store).create_workspace("Fuzz")
    vault = Vault.from_settings(settings)
    channels = [
        Channel(
            cid,
            platform,
            new_id("acct"),
            cid,
            "Europe/Paris",
            VAULT_REF,
            workspace_id=issued.key.workspace_id,
        )
        for cid, platform in EXAMPLE_CHANNELS.items()
    ]
    await api_store.add_channels(channels)
    for channel in channels:
        await api_store.set_channel_secret(
            channel.id, vault.encrypt_json(CREDENTIALS[channel.platform])
        )
        await api_store.set_schedule(channel.id, [PostingSlot(d, time(9, 0)) for d in range(7)])
    app = create_app(settings, api_store, validators=VALIDATORS)
    config = SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"ApiKey": {"bearer": issued.token}}, "auto-signup": False},
            # Invalid data may also be refused as too large before it is read (413, in the
            # schema of every operation with a body): the generator sometimes makes a body
            # over the API's 1 MiB limit.
            "checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}},
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


#: What invalid input may get: schemathesis's defaults (5xx included: not_a_server_error
#: reports those), and 413.
REJECTIONS = [
    "400",
    "401",
    "403",
    "404",
    "405",
    "406",
    "409",
    "413",
    "415",
    "422",
    "428",
    "429",
    "5xx",
]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
LIMITS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _run(strategy, label: str) -> None:
    @given(case=strategy)
    @LIMITS
    def check(case) -> None:
        case.call_and_validate(checks=CHECKS)

    try:
        check()
    except Unsatisfiable:
        pass  # nothing to negate: the operation takes no input
    except Exception as exc:
        exc.add_note(f"operation: {label}")
        raise


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_yields_a_server_error(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:
        _run(operation.as_strategy(generation_mode=mode), operation.label)


def test_the_schema_examples(api_schema):
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for strategy in operation.get_strategies_from_examples():
            _run(strategy, operation.label)
