"""Moving a workspace between two regions' databases (``herald admin move-workspace``), on two
PostgreSQL servers: every row goes, none stays behind, no delivery is ever claimable in both,
and a run interrupted at any point is carried on (or given up) by the next one."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import pytest
from typer.testing import CliRunner

from herald.bootstrap import move_workspace
from herald.cli import app as cli_app
from herald.domain import utcnow
from herald.errors import StoreError, WorkspaceBusy
from herald.stores import postgres_move
from tests.integration.regions_rig import (
    EU,
    US,
    api_client,
    channel_body,
    die_after_copy,
    execute_on,
    rows_naming,
)

pytestmark = [pytest.mark.postgres]


async def test_every_table_is_moved_or_is_no_workspace_s(two, opened):
    conn = await asyncpg.connect(two.us_url.split("?", maxsplit=1)[0])
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
            two.schema,
        )
    finally:
        await conn.close()
    tables = {r["table_name"] for r in rows}
    assert tables == set(postgres_move.MOVED_TABLES) | postgres_move.NOT_MOVED


async def populate(two, opened) -> dict:
    """An EU workspace with a channel and its slots, posts (one due later, one waiting for a
    retry, one published with its attempt), a webhook with an event, and a second key."""
    issued = await opened.tenancy(EU).create_workspace("Agence")
    app = opened.node(two.settings())
    later = (utcnow() + timedelta(days=2)).replace(microsecond=0)
    async with api_client(app, issued.token) as api:
        channel = (await api.post("/v1/channels", json=channel_body(None))).json()
        slots = {"slots": [{"day": "monday", "time": "09:30"}]}
        assert (
            await api.put(f"/v1/channels/{channel['id']}/schedule", json=slots)
        ).status_code == 200
        posts = []
        for text in ("later", "retry", "published"):
            made = await api.post(
                "/v1/posts",
                json={
                    "channel_ids": [channel["id"]],
                    "content": {"text": text},
                    "scheduled_at": later.isoformat(),
                },
                headers={"Idempotency-Key": f"k-{text}"},
            )
            assert made.status_code == 201, made.text
            posts.append(made.json())
        hook = await api.post(
            "/v1/webhooks",
            json={"url": "https://hooks.example.com/h", "events": ["delivery.published"]},
        )
        assert hook.status_code == 201, hook.text
        key = (await api.post("/v1/api-keys", json={"name": "second"})).json()
    deliveries = [p["deliveries"][0]["id"] for p in posts]
    retry_at = later + timedelta(hours=1)
    conn = await asyncpg.connect(two.eu_url.split("?", maxsplit=1)[0])
    try:
        await conn.execute(f"SET search_path TO {two.schema}")
        await conn.execute(
            "UPDATE deliveries SET state = 'retry_wait', next_attempt_at = $2, attempts = 1 "
            "WHERE id = $1",
            deliveries[1],
            retry_at,
        )
        await conn.execute(
            "UPDATE deliveries SET state = 'published', next_attempt_at = NULL, attempts = 1, "
            "external_id = 'fb_1', published_at = now() WHERE id = $1",
            deliveries[2],
        )
        for delivery in deliveries[1:]:
            await conn.execute(
                "INSERT INTO attempts (delivery_id, number, started_at, finished_at, outcome) "
                "VALUES ($1, 1, now(), now(), 'ok')",
                delivery,
            )
        await conn.execute(
            "INSERT INTO webhook_events (id, webhook_id, workspace_id, event, payload, state, "
            "created_at) VALUES ('ev_1', $1, $2, 'delivery.published', '{}', 'pending', now())",
            hook.json()["id"],
            issued.key.workspace_id,
        )
    finally:
        await conn.close()
    return {
        "workspace": issued.key.workspace_id,
        "token": issued.token,
        "second": key,
        "channel": channel["id"],
        "posts": [p["id"] for p in posts],
        "deliveries": deliveries,
        "later": later,
        "retry_at": retry_at,
        "app": app,
    }


async def due_times(url: str, schema: str, deliveries: list[str]) -> dict[str, object]:
    conn = await asyncpg.connect(url.split("?", maxsplit=1)[0])
    try:
        rows = await conn.fetch(
            f"SELECT id, state, next_attempt_at FROM {schema}.deliveries WHERE id = ANY($1)",
            deliveries,
        )
        return {r["id"]: (r["state"], r["next_attempt_at"]) for r in rows}
    finally:
        await conn.close()


async def test_a_move_copies_everything_then_deletes_it_where_it_was(two, opened):
    made = await populate(two, opened)
    workspace = made["workspace"]
    ids = {workspace, made["channel"], *made["posts"], *made["deliveries"], made["second"]["id"]}
    before = await rows_naming(two.eu_url, two.schema, ids)
    env = two.env({}) | {"HERALD_API__DIRECTORY_CACHE_S": "0"}
    args = ["admin", "move-workspace", workspace, "--to", US, "--confirm", workspace]
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "deliveries: 3" in result.output
    assert "held and released: 2" in result.output

    assert await rows_naming(two.eu_url, two.schema, ids) == {}
    # Every row, and a read position for its keys (here, the second's): their next reads
    # wait for a replica of the new database to have replayed the copy.
    assert await rows_naming(two.us_url, two.schema, ids) == {**before, "read_positions": 1}
    home = await opened.directory.workspace(workspace)
    assert (home.region, home.moving_to) == (US, None)
    # Each delivery as it was: the held ones have their own next attempt back.
    assert await due_times(two.us_url, two.schema, made["deliveries"]) == {
        made["deliveries"][0]: ("scheduled", made["later"]),
        made["deliveries"][1]: ("retry_wait", made["retry_at"]),
        made["deliveries"][2]: ("published", None),
    }
    # Its keys now reach it in its new region, through the same API node (a fresh one: the
    # first keeps the EU database's services, and this test's directory cache).
    app = opened.node(two.settings(region=EU))
    for token in (made["token"], made["second"]["key"]):
        async with api_client(app, token) as api:
            listed = await api.get("/v1/posts")
            assert listed.status_code == 200, listed.text
            assert {p["id"] for p in listed.json()["items"]} == set(made["posts"])


async def test_an_interrupted_move_holds_its_copy_and_the_next_run_starts_over(
    two, opened, monkeypatch
):
    made = await populate(two, opened)
    workspace = made["workspace"]
    settings = two.settings(api={"directory_cache_s": 0})
    # The deletion where it was fails, after the copy committed: as if the mover died there.
    die_after_copy(monkeypatch)
    with pytest.raises(StoreError):
        await move_workspace(settings, workspace, US, wait_s=0)
    # Both databases hold it: the new one's copy held, nothing of it claimable there.
    held = await due_times(two.us_url, two.schema, made["deliveries"])
    assert held[made["deliveries"][0]] == ("scheduled", None)
    assert held[made["deliveries"][1]] == ("retry_wait", None)
    kept = await due_times(two.eu_url, two.schema, made["deliveries"])
    assert kept[made["deliveries"][1]] == ("retry_wait", made["retry_at"])
    assert (await opened.directory.workspace(workspace)).moving_to == US

    monkeypatch.undo()
    report = await move_workspace(settings, workspace, US, wait_s=0)
    assert report is not None
    assert report.resumed is not None
    assert "discarded" in report.resumed
    assert report.rows["deliveries"] == 3
    assert (await opened.directory.workspace(workspace)).region == US
    ids = {workspace, *made["posts"], *made["deliveries"]}
    assert await rows_naming(two.eu_url, two.schema, ids) == {}
    moved = await due_times(two.us_url, two.schema, made["deliveries"])
    assert moved[made["deliveries"][1]] == ("retry_wait", made["retry_at"])


async def test_a_move_interrupted_after_the_deletion_is_finished_by_the_next_run(
    two, opened, monkeypatch
):
    made = await populate(two, opened)
    workspace = made["workspace"]
    settings = two.settings(api={"directory_cache_s": 0})

    async def crash(target, workspace_id):
        raise StoreError("the mover died before releasing")

    real = postgres_move._release
    monkeypatch.setattr(postgres_move, "_release", crash)
    with pytest.raises(StoreError):
        await move_workspace(settings, workspace, US, wait_s=0)
    # Past the point of no return: it cannot be given up, only finished.
    with pytest.raises(Exception, match="cannot be undone"):
        await move_workspace(settings, workspace, US, wait_s=0, abort=True)
    monkeypatch.setattr(postgres_move, "_release", real)
    report = await move_workspace(settings, workspace, US, wait_s=0)
    assert report is not None
    assert (report.rows, report.held) == ({}, 2)
    moved = await due_times(two.us_url, two.schema, made["deliveries"])
    assert moved[made["deliveries"][0]] == ("scheduled", made["later"])
    assert (await opened.directory.workspace(workspace)).region == US


async def test_an_interrupted_move_can_be_given_up(two, opened, monkeypatch):
    made = await populate(two, opened)
    workspace = made["workspace"]
    settings = two.settings(api={"directory_cache_s": 0})

    async def dying(src, dst, workspace_id, region):
        raise StoreError("the mover died before copying")

    monkeypatch.setattr(postgres_move, "_copy_then_delete", dying)
    with pytest.raises(StoreError):
        await move_workspace(settings, workspace, US, wait_s=0)
    assert await move_workspace(settings, workspace, US, wait_s=0, abort=True) is None
    home = await opened.directory.workspace(workspace)
    assert (home.region, home.moving_to) == (EU, None)
    assert await rows_naming(two.us_url, two.schema, {workspace}) == {}
    async with api_client(made["app"], made["token"]) as api:
        assert (await api.get("/v1/posts")).status_code == 200


async def test_a_workspace_with_a_delivery_in_flight_is_not_moved(two, opened):
    made = await populate(two, opened)
    workspace = made["workspace"]
    await execute_on(
        two.eu_url,
        f"UPDATE {two.schema}.deliveries SET state = 'claimed', claim_token = 't', "
        "lease_until = now() + interval '1 minute' WHERE id = $1",
        made["deliveries"][0],
    )
    settings = two.settings(api={"directory_cache_s": 0})
    seen: list[int] = []
    with pytest.raises(WorkspaceBusy):
        await move_workspace(settings, workspace, US, wait_s=1.5, on_busy=seen.append)
    assert seen[:1] == [1]
    home = await opened.directory.workspace(workspace)
    assert (home.region, home.moving_to) == (EU, None)  # given up: it stays, served again
    assert await rows_naming(two.us_url, two.schema, {workspace}) == {}


async def test_a_move_needs_a_known_region_and_the_id_confirmed(two):
    env = two.env({})
    cases = [
        (["ws_x", "--to", "ap-south-1", "--confirm", "ws_x"], "unknown region"),
        (["ws_x", "--to", US, "--confirm", "ws_y"], "--confirm must repeat"),
        (["ws_default", "--to", US, "--confirm", "ws_default"], "not found"),
    ]
    for args, said in cases:
        result = await asyncio.to_thread(
            CliRunner().invoke, cli_app, ["admin", "move-workspace", *args], env=env
        )
        assert result.exit_code == 2, result.output
        assert said in result.output
