"""The Connector contract: every connector (the four platforms', the fake) passes these tests.

A tier provides a ``connector_rig`` fixture, parametrized over the connectors it runs, with:

- ``connector``, and the ``platform`` it must say it speaks for;
- ``valid()``: content its platform accepts, different at each call;
- ``refused()``: content its platform refuses (see :mod:`herald.platforms.rules`);
- ``request(content)``: a first publish request of a new delivery to a channel of an account
  of its own on the platform, with that account's credentials;
- ``held()``: the ids of the posts the platform holds on that channel, as the platform counts
  them (the simulator's audit, the fake platform's record).

The connector is closed after the test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from herald.domain import Content
from herald.errors import ContentInvalid
from herald.types import Connector, Published


def whole_units(usage) -> bool:
    return isinstance(usage, Mapping) and all(
        isinstance(meter, str)
        and meter
        and isinstance(units, int)
        and not isinstance(units, bool)
        and units >= 0
        for meter, units in usage.items()
    )


class ConnectorContract:
    """Runs on every connector a tier provides (its ``connector_rig`` fixture)."""

    async def test_is_a_connector_for_its_platform(self, connector_rig):
        assert isinstance(connector_rig.connector, Connector)
        assert connector_rig.connector.platform is connector_rig.platform

    async def test_usage_is_counted_per_meter_in_whole_units(self, connector_rig):
        connector = connector_rig.connector
        usage = connector.usage_of(connector_rig.valid())
        assert whole_units(usage), usage
        assert whole_units(connector.lookup_usage()), connector.lookup_usage()

    async def test_validate_refuses_content_with_no_text_and_no_media(self, connector_rig):
        with pytest.raises(ContentInvalid) as info:
            connector_rig.connector.validate(Content())
        assert info.value.field

    async def test_validate_refuses_what_the_platform_refuses(self, connector_rig):
        with pytest.raises(ContentInvalid) as info:
            connector_rig.connector.validate(connector_rig.refused())
        assert info.value.field

    async def test_validate_accepts_valid_content(self, connector_rig):
        assert connector_rig.connector.validate(connector_rig.valid()) is None

    async def test_publish_returns_the_id_of_the_one_post_the_platform_then_holds(
        self, connector_rig
    ):
        assert connector_rig.held() == []
        published = await connector_rig.connector.publish(
            connector_rig.request(connector_rig.valid())
        )
        assert isinstance(published, Published)
        assert isinstance(published.external_id, str)
        assert published.external_id
        assert connector_rig.held() == [published.external_id]

    async def test_find_returns_a_published_delivery_with_its_id(self, connector_rig):
        connector = connector_rig.connector
        request = connector_rig.request(connector_rig.valid())
        published = await connector.publish(request)
        found = await connector.find(replace(request, attempt=2))
        assert isinstance(found, Published)
        assert found.external_id == published.external_id
        assert connector_rig.held() == [published.external_id]  # a look-up publishes nothing

    async def test_find_returns_none_for_a_delivery_never_published(self, connector_rig):
        connector = connector_rig.connector
        assert await connector.find(connector_rig.request(connector_rig.valid())) is None
        published = await connector.publish(connector_rig.request(connector_rig.valid()))
        # Another post on the channel is not this delivery's.
        assert await connector.find(connector_rig.request(connector_rig.valid())) is None
        assert connector_rig.held() == [published.external_id]

    async def test_aclose_is_idempotent(self, connector_rig):
        connector = connector_rig.connector
        await connector.publish(connector_rig.request(connector_rig.valid()))
        await connector.aclose()
        await connector.aclose()
