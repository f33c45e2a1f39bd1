"""The Connector contract on herald.testing's FakeConnector, for each platform it can stand in
for (tests/suites/connector_contract.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest

from herald.domain import Channel, Content, Platform, new_id, utcnow
from herald.testing import FakeConnector, FakePlatform, channel
from herald.types import PublishRequest
from tests.suites.connector_contract import ConnectorContract

PLATFORMS = list(Platform)


@dataclass
class FakeRig:
    platform: Platform
    world: FakePlatform
    connector: FakeConnector
    channel: Channel

    def valid(self) -> Content:
        return Content(text=f"fake post {uuid.uuid4().hex[:10]}")

    def refused(self) -> Content:
        return Content(link="https://example.com/no-text")  # the fake wants text

    def request(self, content: Content) -> PublishRequest:
        since = utcnow() - timedelta(seconds=1)
        return PublishRequest(new_id("dlv"), self.channel, {"access_token": "t"}, content, 1, since)

    def held(self) -> list[str]:
        account = self.channel.external_id
        return [
            i for (held_by, _), ids in self.world.posts.items() if held_by == account for i in ids
        ]


@pytest.fixture(params=PLATFORMS, ids=[p.value for p in PLATFORMS])
async def connector_rig(request):
    world = FakePlatform()
    rig = FakeRig(request.param, world, FakeConnector(request.param, world), channel(request.param))
    yield rig
    await rig.connector.aclose()


class TestConnectorContract(ConnectorContract):
    pass
