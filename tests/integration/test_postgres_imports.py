"""CSV imports as background jobs on PostgreSQL: the API tests of tests/api (import and
jobs), run here on a PostgreSQL store, and what only several processes on one database can
show: two processes admitting imports of one workspace at once, another process's free-slot
requests while an import runs, and what removing an import's rows costs beside a long
history of others."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import asyncpg
import httpx
import pytest

from herald.api import create_app
from herald.domain import ImportJob, Workspace, new_id, utcnow
from herald.platforms.rules import VALIDATORS
from herald.testing import channel, new_post
from tests.api.conftest import (  # noqa: F401  (fixtures)
    Tenant,
    app,
    client,
    notified,
    other,
    secret_key,
    tenant,
)
from tests.api.test_imports import (  # noqa: F401  (the tests, and their small limits)
    PausedBeforeWriting,
    chunks,
    service,
    settings,
    test_a_channel_deleted_while_the_file_is_stored_fails_the_whole_import,
    test_a_cursor_past_any_line_is_refused,
    test_a_failed_import_keeps_its_problems_short_and_lists_leave_them_out,
    test_a_post_being_imported_can_be_neither_moved_nor_cancelled,
    test_a_process_that_died_after_storing_everything_has_its_import_finished,
    test_a_stopped_process_leaves_nothing_of_its_import,
    test_a_store_failure_while_writing_fails_the_import_and_removes_it,
    test_a_workspace_runs_one_import_at_a_time_here,
    test_an_import_and_requests_for_free_slots_at_once_get_distinct_slots,
    test_an_import_holds_no_slot_lock_outside_its_batches,
    test_an_import_refused_for_its_workspace_is_never_read,
    test_deliveries_per_import_are_limited,
    test_finished_imports_are_purged_after_their_retention_their_posts_stay,
    test_imports_are_listed_oldest_first_page_by_page,
    test_other_workspaces_cannot_see_an_import,
)
from tests.api.test_post_files import (  # noqa: F401
    test_a_file_whose_header_is_wrong_is_refused_at_once,
    test_errors_are_reported_per_line_and_nothing_is_imported,
    test_import_limits,
    test_import_stores_every_row,
    test_malformed_files,
)
from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres


@pytest.fixture
async def api_store(pg_stores):
    """The API tests' store, on PostgreSQL."""
    return await pg_stores.open()


async def test_two_processes_admit_at_most_max_running_imports_of_a_workspace(pg_stores):
    """The check and the insert are one step under the workspace's row lock: of many jobs
    added at once through several pools (API processes), exactly ``max_running`` get in."""
    stores = [await pg_stores.open() for _ in range(3)]
    ws = Workspace(new_id("ws"), "Acme")
    await stores[0].add_workspace(ws)
    jobs = [ImportJob(new_id("imp"), ws.id, runner=f"r{i}") for i in range(12)]
    admitted = await asyncio.gather(
        *(stores[i % 3].add_import(job, max_running=2) for i, job in enumerate(jobs))
    )
    assert sum(admitted) == 2
    assert len(await stores[1].list_imports(ws.id)) == 2


WEEK = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
SLOTS = {"slots": [{"day": d, "time": f"{h:02d}:00"} for d in WEEK for h in (9, 12, 15)]}


async def test_another_process_answers_free_slot_requests_while_an_import_runs(
    *,
    tenant,  # noqa: F811  (the fixtures imported above)
    other,  # noqa: F811
    app,  # noqa: F811
    api_store,
    pg_stores,
    settings,  # noqa: F811
):
    """An import with a ``next_free_slot`` column used to hold the slot locks of all its
    workspace's channels for the whole job. In another API process, that workspace's own
    free-slot requests then waited on the server, each holding one of the process's four
    slot-lock connections, and another workspace's request waited for a connection until the
    import was done. The import now holds no lock outside a batch's write."""
    mine = [await tenant.channel() for _ in range(5)]
    theirs = await other.channel()
    for owner, ch in [(tenant, c) for c in mine] + [(other, theirs)]:
        assert (await owner.put(f"/v1/channels/{ch['id']}/schedule", SLOTS)).status_code == 200
    paused = PausedBeforeWriting(api_store)  # validated: its slots picked, not stored
    imports = service(app, paused)
    targets = " ".join(c["id"] for c in mine)
    data = f"channel_ids,text,next_free_slot\n{targets},x,true\n".encode()
    job = await imports.submit(tenant.workspace_id, chunks(data))
    await asyncio.wait_for(paused.reached.wait(), 30)
    second = create_app(settings, await pg_stores.open(), validators=VALIDATORS)
    transport = httpx.ASGITransport(app=second)
    async with httpx.AsyncClient(transport=transport, base_url="http://second") as c2:
        own = Tenant(tenant.workspace_id, tenant.token, c2)
        theirs_there = Tenant(other.workspace_id, other.token, c2)

        def free(owner, ch):
            body = {"channel_ids": [ch["id"]], "content": {"text": "y"}, "next_free_slot": True}
            return owner.post("/v1/posts", body)

        own_requests = [asyncio.ensure_future(free(own, ch)) for ch in mine[1:]]
        started = time.perf_counter()
        answer = await asyncio.wait_for(free(theirs_there, theirs), 5)
        took_s = time.perf_counter() - started
        assert answer.status_code == 201, answer.text
        assert [a.status_code for a in await asyncio.gather(*own_requests)] == [201] * 4
        paused.go.set()
        await imports.runner.join(job.id)
        await second.state.services.imports.runner.close()
    assert took_s < 2, took_s
    assert (await api_store.get_import(job.id)).state.value == "succeeded"
    await imports.runner.close()


async def test_removing_an_import_beside_a_long_history_of_others_is_quick(pg_stores):
    """Deleting a post checks import_posts for it (the foreign key): without an index on
    post_id, each check scanned every import's lines. Measured once by hand with 300,000 of
    them: a discarded batch of 500 posts took 8.2 s and a workspace's erasure 33 s (0.06 s with
    the index). Here 100,000 lines, and 2.83 s before the index against the 1 s bound."""
    store = await pg_stores.open()
    conn = await asyncpg.connect(PG_URL, server_settings={"search_path": pg_stores.schema})
    try:
        history = 100_000
        await conn.execute("INSERT INTO workspaces VALUES ('ws_hist', 'history', now())")
        await conn.execute(
            "INSERT INTO imports (id, workspace_id, state, created_at, updated_at) "
            "VALUES ('imp_hist', 'ws_hist', 'succeeded', now(), now())"
        )
        await conn.execute(
            "INSERT INTO posts SELECT 'post_h' || g, 'ws_hist', '{}', '{}', now() "
            f"FROM generate_series(1, {history}) g"
        )
        await conn.execute(
            "INSERT INTO import_posts SELECT 'imp_hist', g + 1, 'post_h' || g "
            f"FROM generate_series(1, {history}) g"
        )
        await conn.execute("ANALYZE")
        ws = Workspace(new_id("ws"), "Acme")
        await store.add_workspace(ws)
        ch = channel(workspace_id=ws.id)
        await store.add_channels([ch])
        job = ImportJob(new_id("imp"), ws.id, runner="r", lease_until=utcnow() + timedelta(hours=1))
        assert await store.add_import(job, max_running=5)
        made = [new_post([ch], due_at=utcnow() + timedelta(hours=1)) for _ in range(500)]
        posts = [
            (line, replace(n, post=replace(n.post, workspace_id=ws.id)))
            for line, n in enumerate(made, start=2)
        ]
        await store.add_import_posts(replace(job, posts_written=500), posts)
        started = time.perf_counter()
        assert await store.discard_import(job.id, "r", after_line=0, limit=500) == 501
        discard_s = time.perf_counter() - started
        own = [new_post([ch], due_at=utcnow() + timedelta(hours=1)) for _ in range(500)]
        await store.add_posts([replace(n, post=replace(n.post, workspace_id=ws.id)) for n in own])
        started = time.perf_counter()
        await store.erase_workspace(ws.id)
        erase_s = time.perf_counter() - started
    finally:
        await conn.close()
    assert await store.list_posts(ws.id) == []
    assert discard_s < 1.0, discard_s
    assert erase_s < 1.0, erase_s
