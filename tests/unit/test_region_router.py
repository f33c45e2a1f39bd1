"""The region router of an API node (herald.api.regions), on memory stores: where a workspace
lives or is going is told only to its own live key, and a directory that cannot be read still
lets this region's keys through."""

from __future__ import annotations

import httpx
import pytest
from cryptography.fernet import Fernet

from herald.api import create_app
from herald.config import Settings
from herald.errors import StoreUnavailable
from herald.platforms.rules import VALIDATORS
from herald.service.tenancy import Tenancy
from herald.stores.directory_memory import MemoryDirectory
from herald.stores.memory import MemoryStore
from herald.types import Regional

US, EU = "us-east-1", "eu-west-1"


class Away(MemoryDirectory):
    """A directory that can be switched off."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def key(self, prefix):
        if self.down:
            raise StoreUnavailable("the directory's server is away")
        return await super().key(prefix)


@pytest.fixture
def node():
    us, eu, directory = MemoryStore(), MemoryStore(), Away()
    settings = Settings(
        regions={
            US: {"database_url": "postgresql://db-us/h", "api_url": "https://us.example.com"},
            EU: {"database_url": "postgresql://db-eu/h", "api_url": "https://eu.example.com"},
        },
        region=US,
        directory_url="postgresql://directory/h",
        secret_keys=[Fernet.generate_key().decode()],
        api={"directory_cache_s": 0, "other_regions": "redirect"},
    )
    app = create_app(settings, us, validators=VALIDATORS, regional=Regional(directory))
    return (
        app,
        {
            US: Tenancy(us, directory=directory, region=US),
            EU: Tenancy(eu, directory=directory, region=EU),
        },
        directory,
    )


async def get(app, token, path="/v1/posts"):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        return await http.get(path, headers={"Authorization": f"Bearer {token}"})


def forged(token: str) -> str:
    return token[:12] + ("0" if token[12] != "0" else "1") + token[13:]


async def test_a_move_is_told_only_to_the_workspace_s_own_live_key(node):
    app, tenancy, directory = node
    issued = await tenancy[EU].create_workspace("Agence")
    revoked = await tenancy[EU].issue_key(issued.key.workspace_id, "old")
    await tenancy[EU].revoke_key(None, revoked.key.id)
    await directory.begin_move(issued.key.workspace_id, US)
    moving = await get(app, issued.token)
    assert moving.status_code == 503
    assert US in moving.json()["detail"]
    for other in (forged(issued.token), revoked.token):
        refused = await get(app, other)
        assert refused.status_code == 401
        assert US not in refused.text


async def test_a_revoked_key_is_not_redirected(node):
    app, tenancy, _ = node
    issued = await tenancy[EU].create_workspace("Agence")
    assert (await get(app, issued.token)).status_code == 307
    await tenancy[EU].revoke_key(None, issued.key.id)
    answer = await get(app, issued.token)
    assert answer.status_code == 401
    assert "location" not in answer.headers


async def test_without_the_directory_this_region_s_keys_still_work(node, caplog):
    app, tenancy, directory = node
    here = await tenancy[US].create_workspace("Agency")
    there = await tenancy[EU].create_workspace("Agence")
    directory.down = True
    assert (await get(app, here.token)).status_code == 200
    # Another region's key may be good: "try again", never "unknown key".
    elsewhere = await get(app, there.token)
    assert elsewhere.status_code == 503
    assert elsewhere.headers["retry-after"] == "5"
    assert (await get(app, "hk_0123abcd_" + "0" * 40)).status_code == 503
    assert [r.message for r in caplog.records].count("api.directory_unavailable") == 1
    directory.down = False
    assert (await get(app, there.token)).status_code == 307
