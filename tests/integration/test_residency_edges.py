"""Data residency and ``herald admin move-workspace`` at their edges, on the two regions' real
PostgreSQL servers (tests/integration/regions_rig.py): a second run or an abort while a move
runs, a revocation in the middle of one, two regions on one database, webhook events held
with the copy, a channel that names its region, workspaces made before regions, paths sent
back in a redirect, a malformed HERALD_REGIONS. Each test states what the product promises."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError
from typer.testing import CliRunner

from herald.bootstrap import move_workspace
from herald.cli import app as cli_app
from herald.config import Settings
from herald.domain import utcnow
from herald.errors import StoreError, WorkspaceBusy
from herald.service.tenancy import Tenancy
from herald.service.vault import Vault
from herald.stores import postgres_move
from herald.testing import eventually
from tests.integration.regions_rig import (
    EU,
    SECRET,
    US,
    api_client,
    channel_body,
    die_after_copy,
    execute_on,
    rows_naming,
)
from tests.integration.test_workspace_move import populate

pytestmark = [pytest.mark.postgres]


def _server(url: str) -> str:
    return url.split("?", maxsplit=1)[0]


async def _fetchval(url: str, schema: str, sql: str, *args: object) -> object:
    conn = await asyncpg.connect(_server(url))
    try:
        await conn.execute(f"SET search_path TO {schema}")
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _has_workspace(url: str, schema: str, workspace_id: str) -> bool:
    found = await _fetchval(url, schema, "SELECT 1 FROM workspaces WHERE id = $1", workspace_id)
    return found is not None


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    await eventually(check, within_s=20.0, every_s=0.05)


async def _hold_source_deletion(two) -> tuple[asyncpg.Connection, object]:
    """Hold the mover between its steps 2 and 3: the copy committed in us-east-1, the
    deletion in eu-west-1 not yet (its first DELETE, of read_positions, waits on this lock).
    A slow network or a large workspace opens the same window."""
    conn = await asyncpg.connect(_server(two.eu_url))
    tx = conn.transaction()
    await tx.start()
    await conn.execute(f"LOCK TABLE {two.schema}.read_positions IN SHARE MODE")
    return conn, tx


# -- losing a workspace -------------------------------------------------------------------------


async def test_abort_while_a_move_is_copying_must_not_lose_the_workspace(two, opened):
    """An operator gives up a move (``--abort``) while its run is still going, between its copy's
    commit and its deletion: the abort is refused (one run of a move at a time), and the
    workspace ends whole in one region."""
    made = await populate(two, opened)
    workspace = made["workspace"]
    settings = two.settings(api={"directory_cache_s": 0})
    lock, tx = await _hold_source_deletion(two)
    mover = asyncio.create_task(move_workspace(settings, workspace, US, wait_s=0))
    try:
        await _until(lambda: _has_workspace(two.us_url, two.schema, workspace))
        with contextlib.suppress(Exception):  # refusing is a correct answer; losing data is not
            await move_workspace(settings, workspace, US, wait_s=0, abort=True)
    finally:
        await tx.rollback()
        await lock.close()
    with contextlib.suppress(Exception):  # refusing is a correct answer; losing data is not
        await mover
    in_eu = await _has_workspace(two.eu_url, two.schema, workspace)
    in_us = await _has_workspace(two.us_url, two.schema, workspace)
    assert in_eu or in_us, "the workspace is in neither region's database: lost"


async def test_a_second_run_while_the_first_is_copying_must_not_lose_the_workspace(two, opened):
    """Run again while the first run is still going (it looked stuck: it may wait for deliveries
    in flight for minutes): the second is refused, rather than discard the copy the first is
    making live."""
    made = await populate(two, opened)
    workspace = made["workspace"]
    settings = two.settings(api={"directory_cache_s": 0})
    lock, tx = await _hold_source_deletion(two)
    first = asyncio.create_task(move_workspace(settings, workspace, US, wait_s=0))
    second: asyncio.Task[object] | None = None
    try:
        await _until(lambda: _has_workspace(two.us_url, two.schema, workspace))
        second = asyncio.create_task(move_workspace(settings, workspace, US, wait_s=0))

        async def discarded_or_refused() -> bool:
            if second is not None and second.done():
                return True
            return not await _has_workspace(two.us_url, two.schema, workspace)

        await _until(discarded_or_refused)
    finally:
        await tx.rollback()
        await lock.close()
    for run in (first, second):
        with contextlib.suppress(Exception):  # refusing is a correct answer; losing data is not
            await run  # type: ignore[misc]
    assert await _has_workspace(two.us_url, two.schema, workspace), (
        "both runs ended, the workspace is in neither database"
        if not await _has_workspace(two.eu_url, two.schema, workspace)
        else "the directory says us-east-1 but the workspace stayed in eu-west-1"
    )


async def test_two_regions_on_one_database_are_refused(two):
    """Two regions naming the same database (a copy-paste slip in HERALD_REGIONS) are refused:
    each would take the other's workspaces for its own, and a move between them erase one."""
    with pytest.raises(ValidationError):
        Settings(
            regions={US: {"database_url": two.us_url}, EU: {"database_url": two.us_url}},
            region=US,
            directory_url=two.directory_url,
            secret_keys=[SECRET],
        )


async def test_a_move_between_regions_on_one_database_keeps_the_workspace(two, opened):
    """Two URLs that differ but reach one database (another host name for the same server):
    the settings cannot tell, the move must, rather than delete the workspace."""
    same = two.us_url.replace("127.0.0.1", "localhost")
    assert same != two.us_url
    settings = Settings(
        regions={US: {"database_url": two.us_url}, EU: {"database_url": same}},
        region=US,
        directory_url=two.directory_url,
        secret_keys=[SECRET],
        api={"directory_cache_s": 0},
    )
    issued = await Tenancy(opened.us, directory=opened.directory, region=EU).create_workspace(
        "Agence"
    )
    workspace = issued.key.workspace_id
    with contextlib.suppress(Exception):  # refusing is a correct answer; losing data is not
        await move_workspace(settings, workspace, US, wait_s=0)
    assert await _has_workspace(two.us_url, two.schema, workspace), "the move deleted it"


# -- after a move -------------------------------------------------------------------------------


async def test_a_moved_channel_publishes_from_its_new_region(two, opened):
    """A channel of an EU workspace may name its region (eu-west-1, the only one allowed). Moved
    to us-east-1, it names us-east-1: the new region's dispatchers route its jobs by it, to
    the workers that can publish them."""
    issued = await opened.tenancy(EU).create_workspace("Agence")
    app = opened.node(two.settings())
    async with api_client(app, issued.token) as api:
        made = await api.post("/v1/channels", json=channel_body(None, region=EU))
        assert made.status_code == 201, made.text
    channel = made.json()["id"]
    settings = two.settings(api={"directory_cache_s": 0})
    await move_workspace(settings, issued.key.workspace_id, US, wait_s=0)
    region = await _fetchval(
        two.us_url, two.schema, "SELECT region FROM channels WHERE id = $1", channel
    )
    assert region in (None, US), f"moved channel still routes its jobs to {region}"


async def test_a_webhook_event_being_sent_is_waited_for(two, opened):
    """A webhook event being sent is waited for, as a delivery in flight is: copied with its
    lease, it would be sent again by the new region once the lease ran out."""
    made = await populate(two, opened)
    await execute_on(
        two.eu_url,
        f"UPDATE {two.schema}.webhook_events SET state = 'sending', attempts = 1, "
        "lease_until = now() + interval '1 minute' WHERE id = 'ev_1'",
    )
    settings = two.settings(api={"directory_cache_s": 0})
    with pytest.raises(WorkspaceBusy):
        await move_workspace(settings, made["workspace"], US, wait_s=0)


# -- the other regions' databases, forgotten -----------------------------------------------------


async def test_rotate_keys_re_encrypts_every_regions_secrets(two, opened):
    """``herald admin rotate-keys`` re-encrypts every region's database: once the operator drops
    the old key (as the command's help says to), every region's credentials still open."""
    issued = await opened.tenancy(EU).create_workspace("Agence")
    app = opened.node(two.settings())
    async with api_client(app, issued.token) as api:
        made = await api.post("/v1/channels", json=channel_body(None))
        assert made.status_code == 201, made.text
    new = Fernet.generate_key().decode()
    env = two.env({}) | {"HERALD_SECRET_KEYS": f"{new},{SECRET}"}
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, ["admin", "rotate-keys"], env=env)
    assert result.exit_code == 0, result.output
    secret = await _fetchval(
        two.eu_url, two.schema, "SELECT secret FROM channels WHERE id = $1", made.json()["id"]
    )
    assert isinstance(secret, bytes)
    assert Vault([new]).is_current(secret), "the EU channel's secret is still under the old key"


async def test_a_workspace_made_before_regions_can_still_get_keys(two, opened):
    """A deployment that turns regions on keeps its workspaces: a new key of one the directory
    does not know yet records the workspace in its region, then the key."""
    legacy = await Tenancy(opened.us).create_workspace("Made before regions")
    app = opened.node(two.settings())
    async with api_client(app, legacy.token) as api:
        assert (await api.get("/v1/posts")).status_code == 200
        key = await api.post("/v1/api-keys", json={"name": "second"})
    assert key.status_code == 201, key.text


# -- the region router ----------------------------------------------------------------------------


def _redirecting_app(two, opened):
    return opened.node(two.settings(api={"other_regions": "redirect"}), serve=False)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # Not latin-1 once decoded: the Location header cannot be encoded (500).
        ("/v1/posts/%E2%98%83", "/v1/posts/%E2%98%83"),
        # Decoded, %3F becomes a query: the redirect names another resource.
        ("/v1/posts/a%3Fb", "/v1/posts/a%3Fb"),
        # Decoded, %0D%0A puts a line break in the Location header.
        ("/v1/posts/a%0D%0ASet-Cookie:x=1", "/v1/posts/a%0D%0ASet-Cookie:x=1"),
    ],
)
async def test_a_redirect_keeps_the_path_as_it_was_sent(two, opened, path, expected):
    """Location carries the path as the client sent it (``raw_path``, percent-encoded), never the
    decoded one: ``%3F`` stays in the path, ``%0D%0A`` never becomes a line break."""
    issued = await opened.tenancy(EU).create_workspace("Agence")
    app = _redirecting_app(two, opened)
    status, headers = await _asgi_get(app, path, issued.token)
    assert status == 307, (status, headers)
    assert headers.get("location") == "https://eu.api.example.test" + expected


async def _asgi_get(app, path: str, token: str) -> tuple[int, dict[str, str]]:
    """One GET straight through the ASGI interface, as a server hands it on: ``path``
    percent-decoded, ``raw_path`` as sent. The answer's status and headers, undecoded by any
    client (500 if the app raised)."""
    raw = path.encode("ascii")
    from urllib.parse import unquote

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(path),
        "raw_path": raw,
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"us-node.test"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("us-node.test", 80),
    }
    sent: list[dict] = []
    received = False

    async def receive() -> dict:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception:  # the app's crash: a server answers 500
        return 500, {}
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode("latin-1") for k, v in start["headers"]}


async def test_a_moving_workspace_is_not_told_to_a_caller_without_its_key(two, opened):
    """The "being moved" answer (503, naming the region the workspace goes to) is given only to
    the workspace's own live key; a prefix alone (listed, logged) or a revoked key gets 401."""
    issued = await opened.tenancy(EU).create_workspace("Agence")
    await opened.directory.begin_move(issued.key.workspace_id, US)
    app = opened.node(two.settings(api={"directory_cache_s": 0}))
    forged = f"{issued.key.prefix}_{'0' * 40}"
    async with api_client(app, forged) as api:
        answer = await api.get("/v1/posts")
    assert answer.status_code == 401, answer.text
    assert US not in answer.text


# -- erasure during a move --------------------------------------------------------------------


async def test_deleting_a_workspace_mid_move_erases_it_everywhere(two, opened, monkeypatch):
    """A move stopped after its deletion in eu-west-1 (the mover died before releasing the copy:
    the directory still names eu-west-1, moving to us-east-1). ``herald admin
    delete-workspace`` must not say "deleted" and drop the directory's entry while the whole
    workspace stays in the US database: it is refused while the move is under way."""
    made = await populate(two, opened)
    workspace = made["workspace"]
    settings = two.settings(api={"directory_cache_s": 0})

    async def crash(target, workspace_id):
        raise StoreError("the mover died before releasing")

    monkeypatch.setattr(postgres_move, "_release", crash)
    with pytest.raises(StoreError):
        await move_workspace(settings, workspace, US, wait_s=0)
    args = ["admin", "delete-workspace", workspace, "--confirm", workspace]
    result = await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=two.env({}))
    if result.exit_code == 0:
        left = await rows_naming(two.us_url, two.schema, {workspace, *made["deliveries"]})
        assert left == {}, f"said deleted; left in us-east-1: {left}"
    else:
        # Refused: then the directory must still know where the workspace is.
        assert await opened.directory.workspace(workspace) is not None


async def test_a_held_copy_sends_no_webhook_event(two, opened, monkeypatch):
    """Webhook events of the copy are held with its deliveries until the source has deleted its
    own: a run that dies between the two (then given up or started over) leaves no event
    claimable in both regions."""
    made = await populate(two, opened)
    workspace = made["workspace"]
    await execute_on(
        two.eu_url,
        f"UPDATE {two.schema}.webhook_events SET next_attempt_at = now() - interval '1 second'"
        " WHERE id = 'ev_1'",
    )
    settings = two.settings(api={"directory_cache_s": 0})
    die_after_copy(monkeypatch)
    with pytest.raises(StoreError):
        await move_workspace(settings, workspace, US, wait_s=0)
    now = utcnow()
    lease = now + timedelta(minutes=1)
    from_us = await opened.us.claim_webhook_events(now=now, limit=10, lease_until=lease)
    from_eu = await opened.eu.claim_webhook_events(now=now, limit=10, lease_until=lease)
    sent = [e.id for e in [*from_us, *from_eu]]
    assert sent.count("ev_1") <= 1, "the event is claimed in both regions: sent twice"


# -- configuration --------------------------------------------------------------------------------


def test_malformed_regions_json_is_a_clear_error(tmp_path):
    """HERALD_REGIONS is JSON; a typo in it is a clear message and exit 2, not a traceback."""
    env = {
        "HERALD_REGIONS": '{"us-east-1": ',
        "HERALD_REGION": US,
        "HERALD_DIRECTORY_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "HERALD_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
    }
    result = CliRunner().invoke(cli_app, ["admin", "create-workspace", "Agence"], env=env)
    assert result.exit_code == 2, (result.exit_code, result.exception)
    assert "regions" in result.output


# -- rate limits across a move --------------------------------------------------------------------


def _posts_of(workspace_id: str, fb, count: int):
    from herald.domain import Content, NewPost, Post, new_id

    due = utcnow() - timedelta(seconds=1)
    return [
        NewPost.at(
            Post(
                id=(pid := new_id("post")),
                content=Content(text=f"hello {pid}"),
                workspace_id=workspace_id,
            ),
            [(new_id("dlv"), fb.id)],
            due,
        )
        for _ in range(count)
    ]


@pytest.mark.xfail(
    strict=True,
    reason="known limit (docs/architecture.md, Regions, 'A move does not carry the limits' "
    "counts'): an engine with in-memory limits rebuilds them from its database only at start",
)
async def test_a_moved_channel_does_not_get_a_fresh_quota(two, opened):
    """A channel spends its hourly quota (3) in eu-west-1, then its workspace moves to
    us-east-1, where an engine already runs: that engine built its limiter from its own
    database's attempts when it started, and is not told of the moved attempts, so three more
    posts go out at once. Known limit (expected to fail until engines replay what moves in)."""
    from herald.testing import FakeConnector, FakePlatform, channel
    from tests.suites.engine_restart import drain, engine_for, hourly

    issued = await opened.tenancy(EU).create_workspace("Agence")
    workspace = issued.key.workspace_id
    world, fb = FakePlatform(), channel(workspace_id=workspace)
    conn = FakeConnector(fb.platform, world)
    await opened.eu.add_channels([fb])
    await opened.eu.add_posts(_posts_of(workspace, fb, 3))
    await drain(engine_for(opened.eu, conn, hourly(3)))
    assert world.published() == 3

    us_engine = engine_for(opened.us, conn, hourly(3))
    running = asyncio.create_task(us_engine.run())
    try:
        await eventually(lambda: us_engine.ready, within_s=20)
        await move_workspace(two.settings(api={"directory_cache_s": 0}), workspace, US, wait_s=0)
        later = await opened.us.add_posts(_posts_of(workspace, fb, 3))
        ids = {d.id for d in later}

        async def settled() -> bool:
            """Each later post published, or deferred to when the window frees."""
            found = {d.id: d for d in await opened.us.list_deliveries(limit=1000) if d.id in ids}
            deferred_to = utcnow() + timedelta(minutes=30)
            return len(found) == 3 and all(
                d.state.value == "published"
                or (d.next_attempt_at is not None and d.next_attempt_at > deferred_to)
                for d in found.values()
            )

        await eventually(settled, within_s=30, every_s=0.1)
    finally:
        us_engine.request_stop()
        await asyncio.wait_for(running, 20)
    assert world.published() == 3, f"{world.published()} requests within an hour, limit 3"


# -- a revocation during a move ----------------------------------------------------------------


async def test_a_key_revoked_during_a_move_stays_revoked(two, opened):
    """``herald admin revoke-key`` run while the mover is between its read and its deletion
    must not revoke a row the deletion then takes away while the copy keeps the key live:
    it is refused with the reason (the workspace's requests are refused meanwhile anyway),
    and once the move is over the revocation reaches the new region and holds."""
    made = await populate(two, opened)
    workspace = made["workspace"]
    settings = two.settings(api={"directory_cache_s": 0})
    second = made["second"]
    args = ["admin", "revoke-key", second["id"]]
    lock, tx = await _hold_source_deletion(two)
    mover = asyncio.create_task(move_workspace(settings, workspace, US, wait_s=0))
    try:
        await _until(lambda: _has_workspace(two.us_url, two.schema, workspace))
        refused = await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=two.env({}))
    finally:
        await tx.rollback()
        await lock.close()
    await mover
    assert refused.exit_code == 2, refused.output
    assert "being moved" in refused.output
    revoked = await asyncio.to_thread(CliRunner().invoke, cli_app, args, env=two.env({}))
    assert revoked.exit_code == 0, revoked.output
    app = opened.node(two.settings(region=EU, api={"directory_cache_s": 0}))
    async with api_client(app, second["key"]) as api:
        answer = await api.get("/v1/posts")
    assert answer.status_code == 401, "a revoked key reads the workspace after its move"
