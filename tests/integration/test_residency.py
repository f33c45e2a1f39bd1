"""Data residency: a deployment in two regions, each region's database on a PostgreSQL server of
its own (us-east-1 on the test server, eu-west-1 on the second one scripts/services.sh starts),
with the global directory beside the first.

An EU workspace is made by ``herald admin create-workspace --region eu-west-1``; a US API node
serves its key from the EU database (or redirects it to the EU API); its rows, attempts
included, are on the EU server only, and no row of the US database names any of its ids; US
dispatchers and workers never publish its posts, EU ones do, each once.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from herald.cli import app as cli_app
from herald.demo.servers import OwnRedis
from herald.domain import Platform, WorkspaceHome, utcnow
from herald.service.tenancy import Tenancy
from herald.simulator import Simulator
from herald.testing import channel, eventually
from tests.conftest import PG_URL, new_redis_prefix
from tests.integration.regions_rig import EU, US, api_client, channel_body, cli, rows_naming
from tests.integration.test_postgres_process import (  # noqa: F401
    herald,
    pg_engine_env,
    sim,
)

pytestmark = [pytest.mark.postgres]


async def test_create_workspace_puts_it_in_its_region_only(two, opened):
    env = two.env({})
    eu_lines = await asyncio.to_thread(
        cli, env, "admin", "create-workspace", "Agence", "--region", EU
    )
    us_lines = await asyncio.to_thread(cli, env, "admin", "create-workspace", "Agency")
    eu_ws = eu_lines[0].removeprefix("workspace: ")
    us_ws = us_lines[0].removeprefix("workspace: ")
    assert (eu_lines[1], us_lines[1]) == (f"region: {EU}", f"region: {US}")

    assert (await opened.eu.get_workspace(eu_ws)).name == "Agence"
    assert await rows_naming(two.us_url, two.schema, {eu_ws}) == {}
    assert await rows_naming(two.eu_url, two.schema, {us_ws}) == {}
    assert (await opened.directory.workspace(eu_ws)).region == EU
    assert (await opened.directory.workspace(us_ws)).region == US
    key = await opened.directory.key(eu_lines[-1][:11])
    assert (key.workspace_id, key.region) == (eu_ws, EU)

    # The admin commands find a workspace's or a key's region in the directory.
    more = await asyncio.to_thread(cli, env, "admin", "create-key", eu_ws, "--name", "ci")
    new = await opened.directory.key(more[-1][:11])
    assert (new.workspace_id, new.region) == (eu_ws, EU)
    assert await opened.eu.api_key_by_prefix(new.prefix) is not None
    await asyncio.to_thread(cli, env, "admin", "revoke-key", new.key_id)
    assert (await opened.directory.key(new.prefix)).revoked
    await asyncio.to_thread(cli, env, "admin", "delete-workspace", eu_ws, "--confirm", eu_ws)
    assert await opened.directory.workspace(eu_ws) is None
    assert await rows_naming(two.eu_url, two.schema, {eu_ws}) == {}


async def test_a_region_the_deployment_lacks_is_refused(two):
    args = ["admin", "create-workspace", "X", "--region", "ap-south-1"]
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=two.env({}))
    assert result.exit_code == 2
    assert "unknown region 'ap-south-1'" in result.output


async def test_a_us_api_node_serves_an_eu_key_from_the_eu_database(two, opened):
    eu_key = await opened.tenancy(EU).create_workspace("Agence")
    us_key = await opened.tenancy(US).create_workspace("Agency")
    app = opened.node(two.settings())
    async with api_client(app, eu_key.token) as eu_api, api_client(app, us_key.token) as us_api:
        made = await eu_api.post("/v1/channels", json=channel_body(None))
        assert made.status_code == 201, made.text
        channel = made.json()
        assert channel["region"] in (None, EU)
        # Its channels publish from its region: another one is refused, with the reason.
        wrong = await eu_api.post("/v1/channels", json=channel_body(None, region=US))
        assert wrong.status_code == 422
        assert wrong.json()["field"] == "region"
        post = await eu_api.post(
            "/v1/posts",
            json={
                "channel_ids": [channel["id"]],
                "content": {"text": "bonjour"},
                "scheduled_at": "2027-06-01T09:00:00Z",
            },
        )
        assert post.status_code == 201, post.text
        listed = await eu_api.get("/v1/posts")
        assert [p["id"] for p in listed.json()["items"]] == [post.json()["id"]]
        key = await eu_api.post("/v1/api-keys", json={"name": "second"})
        assert key.status_code == 201, key.text
        # The US workspace's key is this node's own region's, as always.
        assert (await us_api.get("/v1/posts")).json()["items"] == []
        us_made = await us_api.post("/v1/channels", json=channel_body(None))
        assert us_made.status_code == 201, us_made.text

    second = key.json()
    assert (await opened.directory.key(second["prefix"])).region == EU
    async with api_client(app, second["key"]) as again:
        assert (await again.get(f"/v1/posts/{post.json()['id']}")).status_code == 200
    ids = {eu_key.key.workspace_id, channel["id"], post.json()["id"], second["id"]}
    assert await rows_naming(two.us_url, two.schema, ids) == {}
    on_eu = await rows_naming(two.eu_url, two.schema, ids)
    assert {"workspaces", "channels", "posts", "deliveries", "api_keys"} <= on_eu.keys()
    assert await rows_naming(two.eu_url, two.schema, {us_made.json()["id"]}) == {}


async def test_a_node_that_redirects_sends_an_eu_key_to_the_eu_api(two, opened):
    eu_key = await opened.tenancy(EU).create_workspace("Agence")
    us_key = await opened.tenancy(US).create_workspace("Agency")
    settings = two.settings(api={"other_regions": "redirect"})
    app = opened.node(settings, serve=False)
    async with api_client(app, eu_key.token) as eu_api:
        answer = await eu_api.post("/v1/posts?dry_run=1", json={"x": 1})
        assert answer.status_code == 307
        assert answer.headers["location"] == "https://eu.api.example.test/v1/posts?dry_run=1"
        assert answer.headers["content-type"] == "application/problem+json"
        assert EU in answer.json()["detail"]
    # A made-up secret on a real prefix learns nothing of where the workspace lives.
    forged = eu_key.token[:12] + "0" * 40
    async with api_client(app, forged) as forger:
        refused = await forger.get("/v1/posts")
        assert refused.status_code == 401
        assert "location" not in refused.headers
    async with api_client(app, us_key.token) as us_api:
        assert (await us_api.get("/v1/posts")).status_code == 200


async def test_a_workspace_being_moved_is_refused_until_the_move_ends(two, opened):
    eu_key = await opened.tenancy(EU).create_workspace("Agence")
    settings = two.settings(api={"directory_cache_s": 0})
    app = opened.node(settings)
    workspace = eu_key.key.workspace_id
    await opened.directory.begin_move(workspace, US)
    async with api_client(app, eu_key.token) as eu_api:
        refused = await eu_api.get("/v1/posts")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "30"
        assert refused.json()["type"] == "urn:herald:problem:workspace-moving"
        await opened.directory.end_move(workspace, moved=False)
        assert (await eu_api.get("/v1/posts")).status_code == 200


async def test_the_directory_holds_no_content(two, opened):
    issued = await opened.tenancy(EU).create_workspace("Agence Très Secrète")
    conn = await asyncpg.connect(PG_URL)
    try:
        dumped = await conn.fetch(
            f'SELECT t::text AS row FROM "{two.schema}_dir".directory_workspaces t '
            f'UNION ALL SELECT t::text FROM "{two.schema}_dir".directory_keys t'
        )
    finally:
        await conn.close()
    text = " ".join(r["row"] for r in dumped)
    assert issued.key.workspace_id in text
    assert "Secrète" not in text
    assert "first key" not in text
    assert issued.token.split("_")[2] not in text  # the secret: its hash only
    workspace = await opened.eu.get_workspace(issued.key.workspace_id)
    assert await opened.directory.workspaces(EU) == [
        WorkspaceHome(workspace.id, EU, workspace.created_at)
    ]


@pytest.mark.redis
@pytest.mark.slow
async def test_each_region_publishes_its_own_workspaces_only(two, opened, sim):  # noqa: F811
    broker = OwnRedis()
    broker.start()
    base = pg_engine_env(
        sim,
        two.us_url,
        HERALD_BROKER__URL=broker.url,
        HERALD_BROKER__HANDOFF_S="5",
        HERALD_LIMITS__REDIS_PREFIX=new_redis_prefix(),
        HERALD_ENGINE__HEARTBEAT_S="0.5",
        HERALD_ENGINE__DEAD_AFTER_S="2",
    )
    env = {region: two.env(base, region) for region in (US, EU)}
    assert await herald(env[US], "migrate") == 0  # every region's database, and the directory
    eu_ws, eu_token = _issued(
        await asyncio.to_thread(cli, env[US], "admin", "create-workspace", "Agence", "--region", EU)
    )
    us_ws, us_token = _issued(
        await asyncio.to_thread(cli, env[US], "admin", "create-workspace", "Agency")
    )
    processes: list[asyncio.subprocess.Process] = []
    try:
        app = opened.node(two.settings(**_platform_settings(sim)))
        ids: dict[str, set[str]] = {}
        accounts: dict[str, set[str]] = {}
        for region, token in ((EU, eu_token), (US, us_token)):
            async with api_client(app, token) as api:
                ids[region], accounts[region] = await _schedule(api, sim, posts=POSTS)

        def published(region: str) -> int:
            return sum(1 for p in sim.audit.posts() if p.account in accounts[region])

        for region in (US, EU):
            processes.append(await _start(env[region], "dispatcher", "--region", region))
        processes.append(await _start(env[US], "worker", "--region", US))
        await eventually(lambda: published(US) == 2 * POSTS, within_s=30)
        # Long enough for the EU jobs to be handed off, lapse and be handed off again.
        await asyncio.sleep(6)
        assert published(EU) == 0  # no EU worker yet: the US worker took none of them
        processes.append(await _start(env[EU], "worker", "--region", EU))
        await eventually(lambda: published(EU) == 2 * POSTS, within_s=30)
        for process in processes:
            process.terminate()
        assert [await asyncio.wait_for(p.wait(), 30) for p in processes] == [0] * 4
        processes.clear()

        summary = sim.audit.summary()
        assert (summary["posts"], summary["duplicates"]) == (4 * POSTS, 0)
        eu_ids = ids[EU] | {eu_ws}
        assert await rows_naming(two.us_url, two.schema, eu_ids) == {}
        assert "attempts" in await rows_naming(two.eu_url, two.schema, eu_ids)
        assert await rows_naming(two.eu_url, two.schema, ids[US] | {us_ws}) == {}
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        broker.stop()


POSTS = 6


def _issued(lines: list[str]) -> tuple[str, str]:
    return lines[0].removeprefix("workspace: "), lines[-1]


def _platform_settings(simulator: Simulator) -> dict[str, Any]:
    return {name: dict(values) for name, values in simulator.settings_overrides().items()}


async def _schedule(
    api: httpx.AsyncClient, simulator: Simulator, *, posts: int
) -> tuple[set[str], set[str]]:
    """Two Facebook channels of the key's workspace and ``posts`` posts due now on each;
    the ids made (channels, posts, deliveries) and the channels' accounts."""
    ids: set[str] = set()
    accounts: set[str] = set()
    channels = []
    for _ in range(2):
        made = await api.post("/v1/channels", json=channel_body(simulator))
        assert made.status_code == 201, made.text
        channels.append(made.json()["id"])
        accounts.add(made.json()["external_id"])
    ids.update(channels)
    for index in range(posts):
        post = await api.post(
            "/v1/posts",
            json={
                "channel_ids": channels,
                "content": {"text": f"post {index}"},
                "scheduled_at": utcnow().isoformat(),
            },
        )
        assert post.status_code == 201, post.text
        ids.add(post.json()["id"])
        ids.update(d["id"] for d in post.json()["deliveries"])
    return ids, accounts


async def _start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "herald.cli", *args, env=env)


async def test_sync_directory_records_what_was_made_before_it_and_forgets_orphans(two, opened):
    # Made while the deployment had one region: no directory was told.
    legacy = await Tenancy(opened.eu).create_workspace("Agence d'avant")
    young = WorkspaceHome("ws_being_made", US, utcnow())
    old = WorkspaceHome("ws_left_behind", US, utcnow() - timedelta(hours=1))
    for home in (young, old):
        await opened.directory.add_workspace(home)
    lines = await asyncio.to_thread(cli, two.env({}), "admin", "sync-directory")
    assert lines == [
        f"{EU}: 1 workspaces and 1 keys recorded, 0 forgotten",
        f"{US}: 0 workspaces and 0 keys recorded, 1 forgotten",
    ]
    key = await opened.directory.key(legacy.key.prefix)
    assert (key.workspace_id, key.region) == (legacy.key.workspace_id, EU)
    assert await opened.directory.workspace("ws_left_behind") is None
    assert await opened.directory.workspace("ws_being_made") is not None  # may be in progress
    # Run again: nothing more to do.
    again = await asyncio.to_thread(cli, two.env({}), "admin", "sync-directory", "--region", EU)
    assert again == [f"{EU}: 0 workspaces and 0 keys recorded, 0 forgotten"]


async def test_sync_directory_names_a_channel_of_another_region(two, opened):
    issued = await Tenancy(opened.eu).create_workspace("Agence")
    made = channel(Platform.FACEBOOK, workspace_id=issued.key.workspace_id, region=US)
    await opened.eu.add_channels([made])
    args = ["admin", "sync-directory", "--region", EU]
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=two.env({}))
    assert result.exit_code == 1
    assert made.id in result.output


async def test_delete_workspace_finishes_an_erasure_the_directory_missed(two, opened):
    issued = await opened.tenancy(EU).create_workspace("Agence")
    workspace = issued.key.workspace_id
    await opened.eu.erase_workspace(workspace)  # the directory's write then failed
    env = two.env({})
    await asyncio.to_thread(
        cli, env, "admin", "delete-workspace", workspace, "--confirm", workspace
    )
    assert await opened.directory.workspace(workspace) is None


async def test_a_workspace_being_moved_is_not_deleted(two, opened):
    issued = await opened.tenancy(EU).create_workspace("Agence")
    workspace = issued.key.workspace_id
    await opened.directory.begin_move(workspace, US)
    args = ["admin", "delete-workspace", workspace, "--confirm", workspace]
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=two.env({}))
    assert result.exit_code == 2
    assert "being moved" in result.output
    assert (await opened.eu.get_workspace(workspace)).name == "Agence"


async def test_rotate_keys_re_encrypts_every_region_s_database(two, opened):
    issued = await opened.tenancy(EU).create_workspace("Agence")
    app = opened.node(two.settings())
    async with api_client(app, issued.token) as api:
        made = await api.post("/v1/channels", json=channel_body(None))
        assert made.status_code == 201, made.text
    env = two.env({})
    env["HERALD_SECRET_KEYS"] = f"{Fernet.generate_key().decode()},{env['HERALD_SECRET_KEYS']}"
    lines = await asyncio.to_thread(cli, env, "admin", "rotate-keys")
    assert f"{EU}: channel secrets re-encrypted: 1" in lines
    assert f"{US}: channel secrets re-encrypted: 0" in lines
