"""CSV imports as background jobs: limits per import and per workspace, tenancy, listings,
what a stopped process leaves behind, and what an import costs the others (memory, the event
loop). tests/api/test_post_files.py has the file format and its problems."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
import tempfile
import tracemalloc
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

import herald.service.imports as imports_module
from herald.config import Settings
from herald.domain import ImportJob, ImportState, Platform, new_id, utcnow
from herald.errors import StoreUnavailable, TooManyRequests
from herald.service import import_work
from herald.service.import_runner import ImportRunner
from herald.service.import_work import BATCH_DELIVERIES, BATCH_POSTS, ImportLimits
from herald.service.imports import ImportService
from herald.testing import new_post
from tests.api.conftest import METRICS_TOKEN, assert_problem, imported, later
from tests.api.test_post_files import StepWatch, _Stopwatch, assert_failed, stored, upload


@pytest.fixture
def settings(secret_key) -> Settings:
    """Small import limits, to reach them with small files."""
    return Settings(
        secret_keys=[secret_key],
        engine={"sqlite_synchronous": "NORMAL"},
        api={
            "metrics_token": METRICS_TOKEN,
            "key_requests_per_s": 0,
            "import_max_rows": 50,
            "import_max_deliveries": 30,
            "import_max_running": 1,
        },
    )


async def test_deliveries_per_import_are_limited(tenant, app, api_store):
    """Rows times their channels: 15 rows on two channels are the 30 deliveries allowed, one
    more is one too many (named at its line)."""
    a, b = await tenant.channel(), await tenant.channel(Platform.LINKEDIN)
    head, two, one = "channel_ids,text,scheduled_at\n", f"{a['id']} {b['id']}", a["id"]
    rows = "".join(f"{two},row {i},{later()}\n" for i in range(15))
    assert (await imported(tenant, app, head + rows))["state"] == "succeeded"
    over = assert_failed(await imported(tenant, app, head + rows + f"{one},x,{later()}\n"), "body")
    assert over["errors"][0]["line"] == 17
    assert "at most 30 deliveries" in over["errors"][0]["message"]
    assert await stored(api_store, tenant) == 15


async def test_a_workspace_runs_one_import_at_a_time_here(tenant, other, app, api_store):
    """``import_max_running`` is 1: while another process works on one of the workspace's
    imports (added here straight to the store), a second one is a 429; another workspace is
    not held up, and once the first is done the second goes in."""
    channel = await tenant.channel()
    running = ImportJob(new_id("imp"), tenant.workspace_id, runner="elsewhere")
    assert await api_store.add_import(running, max_running=1)
    text = f"channel_ids,text,scheduled_at\n{channel['id']},x,{later()}\n"
    problem = assert_problem(await upload(tenant, text), 429)
    assert "1 imports queued or running" in problem["detail"]
    assert (await upload(other, "channel_ids\n")).status_code == 202  # its own limit
    await api_store.save_import(replace(running, state=ImportState.SUCCEEDED))
    assert (await imported(tenant, app, text))["state"] == "succeeded"
    assert await stored(api_store, tenant) == 1


async def test_other_workspaces_cannot_see_an_import(tenant, other, app):
    channel = await tenant.channel()
    job = await imported(tenant, app, f"channel_ids,text\n{channel['id']},x\n")
    unknown = await other.get("/v1/imports/imp_0123456789abcdef0123456789abcdef")
    for url in (f"/v1/imports/{job['id']}", job["posts_url"]):
        seen = await other.get(url)
        assert_problem(seen, 404)
        assert seen.json()["detail"].replace(job["id"], "?") == unknown.json()["detail"].replace(
            "imp_0123456789abcdef0123456789abcdef", "?"
        )
    assert (await other.get("/v1/imports")).json() == {"items": [], "next_cursor": None}
    mine = (await tenant.get("/v1/imports")).json()
    assert [j["id"] for j in mine["items"]] == [job["id"]]


async def test_imports_are_listed_oldest_first_page_by_page(tenant, app):
    channel = await tenant.channel()
    ids = []
    for i in range(3):
        job = await imported(tenant, app, f"channel_ids,text\n{channel['id']},x{i}\n")
        ids.append(job["id"])
    first = (await tenant.get("/v1/imports", params={"limit": 2})).json()
    assert [j["id"] for j in first["items"]] == ids[:2]
    rest = (await tenant.get("/v1/imports", params={"cursor": first["next_cursor"]})).json()
    assert ([j["id"] for j in rest["items"]], rest["next_cursor"]) == (ids[2:], None)
    assert_problem(await tenant.get("/v1/imports", params={"cursor": "nope"}), 422, "cursor")
    bad = await tenant.get(f"/v1/imports/{ids[0]}/posts", params={"cursor": first["next_cursor"]})
    assert_problem(bad, 422, "cursor")  # a cursor of another listing


# -- a process that stops -----------------------------------------------------------------------
class GatedStore:
    """The API's store, on which an import's second batch waits until the test lets it go
    (``hold``), then fails (with ``fail``) or is stored."""

    def __init__(self, store, *, fail: Exception | None = None, hold: bool = True) -> None:
        self._store = store
        self._fail = fail
        self._hold = hold
        self.reached = asyncio.Event()
        self.go = asyncio.Event()
        self.batches = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def add_import_posts(self, job, posts):
        self.batches += 1
        if self.batches == 2:
            if self._hold:
                self.reached.set()
                await self.go.wait()
            if self._fail is not None:
                raise self._fail
        await self._store.add_import_posts(job, posts)


class PausedBeforeWriting:
    """The API's store, on which an import waits once validated, before it stores anything,
    until the test lets it go."""

    def __init__(self, store) -> None:
        self._store = store
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def save_import(self, job):
        if job.state is ImportState.WRITING and not self.reached.is_set():
            self.reached.set()
            await self.go.wait()
        await self._store.save_import(job)


async def claimed(store) -> int:
    """How many deliveries an engine claims now (a day ahead: every due one)."""
    now = utcnow() + timedelta(days=1)
    found = await store.claim_due(
        now=now, limit=1000, lease_until=now, expire_before=now - timedelta(days=9)
    )
    return len(found.jobs)


def rows_of(channel_id: str, count: int, text: str = "row") -> bytes:
    due = later()
    lines = "".join(f"{channel_id},{text} {i},{due}\n" for i in range(count))
    return f"channel_ids,text,scheduled_at\n{lines}".encode()


async def chunks(data: bytes, size: int = 65_536):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def service(app, store, **limits) -> ImportService:
    """An import service of its own on ``store``: another API process."""
    services = app.state.services
    runner = ImportRunner(
        store=store, posts=services.posts, limits=ImportLimits(**limits), notify=None
    )
    return ImportService(store=store, runner=runner)


async def test_a_stopped_process_leaves_nothing_of_its_import(tenant, app, api_store):
    """Stopped in the middle of writing (a deploy, SIGTERM), a process gives its import up;
    the next process to sweep removes the posts it had stored, and the job fails as
    interrupted: nothing of a half import stays, and sending the file again duplicates
    nothing."""
    channel = await tenant.channel()
    gated = GatedStore(api_store)
    first = service(app, gated, max_rows=5000, max_deliveries=5000)
    job = await first.submit(tenant.workspace_id, chunks(rows_of(channel["id"], 1500)))
    await asyncio.wait_for(gated.reached.wait(), 30)
    held = await api_store.get_import(job.id)
    first_batch = min(BATCH_POSTS, BATCH_DELIVERIES)  # rows on one channel each
    assert (held.state, held.posts_written) == (ImportState.WRITING, first_batch)
    assert await claimed(api_store) == 0  # stored, held
    await first.runner.close()
    assert await stored(api_store, tenant) == first_batch  # until someone sweeps
    second = service(app, api_store)
    assert await second.runner.sweep() == 1
    await second.runner.join(job.id)
    seen = (await tenant.get(f"/v1/imports/{job.id}")).json()
    assert_failed(seen)
    assert "stopped before it was done" in seen["detail"]
    assert await stored(api_store, tenant) == 0
    assert (await tenant.get(seen["posts_url"])).json()["items"] == []
    assert await second.runner.sweep() == 0
    await second.runner.close()


async def test_a_process_that_died_after_storing_everything_has_its_import_finished(
    tenant, app, api_store
):
    """Every post stored (committed), the process died while making them due: the sweep
    (once its lease ran out) makes the rest due and the import succeeds."""
    a, b = await tenant.channel(), await tenant.channel(Platform.LINKEDIN)
    dead = ImportJob(
        new_id("imp"),
        tenant.workspace_id,
        state=ImportState.WRITING,
        rows_total=3,
        rows_validated=3,
        deliveries=6,
        runner="dead",
        lease_until=utcnow() - timedelta(seconds=1),
    )
    assert await api_store.add_import(dead, max_running=1)
    targets = [await api_store.get_channel(c["id"]) for c in (a, b)]
    made = [new_post(targets, due_at=utcnow()) for _ in range(3)]
    posts = [
        (line, replace(n, post=replace(n.post, workspace_id=tenant.workspace_id)))
        for line, n in zip((2, 3, 4), made, strict=True)
    ]
    done = replace(dead, committed=True, posts_written=3)
    await api_store.add_import_posts(done, posts)
    await api_store.release_import(dead.id, "dead", after_line=0, limit=1)  # one made due
    assert await claimed(api_store) == 2
    rescuer = service(app, api_store)
    assert await rescuer.runner.sweep() == 1
    await rescuer.runner.join(dead.id)
    seen = (await tenant.get(f"/v1/imports/{dead.id}")).json()
    assert (seen["state"], seen["progress"]["posts_written"]) == ("succeeded", 3)
    assert await claimed(api_store) == 4  # the other two posts' deliveries
    await rescuer.runner.close()


async def test_a_channel_deleted_while_the_file_is_stored_fails_the_whole_import(
    tenant, app, api_store
):
    """Deleting a channel cancels its deliveries, but not held ones stored after: the import
    notices once it has stored everything, removes it all (the cancelled ones too) and fails,
    as it would have failed had the channel been gone when it was validated."""
    keep, drop = await tenant.channel(), await tenant.channel(Platform.LINKEDIN)
    gated = GatedStore(api_store)
    imports = service(app, gated, max_rows=5000, max_deliveries=5000)
    data = rows_of(f"{keep['id']} {drop['id']}", 1200)
    job = await imports.submit(tenant.workspace_id, chunks(data))
    await asyncio.wait_for(gated.reached.wait(), 30)
    assert (await tenant.delete(f"/v1/channels/{drop['id']}")).status_code == 204
    gated.go.set()
    await imports.runner.join(job.id)
    seen = assert_failed((await tenant.get(f"/v1/imports/{job.id}")).json(), "channel_ids")
    assert drop["id"] in seen["errors"][0]["message"]
    assert await stored(api_store, tenant) == 0
    await imports.runner.close()


async def test_a_store_failure_while_writing_fails_the_import_and_removes_it(
    tenant, app, api_store
):
    channel = await tenant.channel()
    failure = StoreUnavailable("postgresql: the server restarted")
    gated = GatedStore(api_store, fail=failure, hold=False)
    imports = service(app, gated, max_rows=5000, max_deliveries=5000)
    job = await imports.submit(tenant.workspace_id, chunks(rows_of(channel["id"], 1200)))
    await imports.runner.join(job.id)
    seen = assert_failed((await tenant.get(f"/v1/imports/{job.id}")).json())
    assert seen["detail"].startswith("the store failed while the file was stored")
    assert "postgresql" not in seen["detail"]  # the operator's words stay in the logs
    assert await stored(api_store, tenant) == 0
    await imports.runner.close()


async def test_a_post_being_imported_can_be_neither_moved_nor_cancelled(tenant, app, api_store):
    """An import's posts are held until the whole file is stored. Made due meanwhile (a
    reschedule), one could be published before the import fails and is removed, and the job
    would say nothing was imported while a resend publishes it again: no user change touches
    them (409), listings and exports leave them out, and a failed import removes them all."""
    channel = await tenant.channel()
    gated = GatedStore(api_store, fail=StoreUnavailable("the server restarted"))
    imports = service(app, gated, max_rows=5000, max_deliveries=5000)
    job = await imports.submit(tenant.workspace_id, chunks(rows_of(channel["id"], 1200)))
    await asyncio.wait_for(gated.reached.wait(), 30)
    [first] = (await tenant.get(f"/v1/imports/{job.id}/posts", params={"limit": 1})).json()["items"]
    post_id, delivery_id = first["post"]["id"], first["post"]["deliveries"][0]["id"]
    for url, body in [
        (f"/v1/posts/{post_id}/reschedule", {"scheduled_at": later(minutes=5)}),
        (f"/v1/posts/{post_id}/reschedule", {"next_free_slot": True}),
        (f"/v1/posts/{post_id}/cancel", None),
        (f"/v1/deliveries/{delivery_id}/cancel", None),
        (f"/v1/deliveries/{delivery_id}/retry", None),
    ]:
        refused = assert_problem(await tenant.post(url, body), 409)
        assert "is being imported" in refused["detail"], (url, refused)
    assert (await tenant.get("/v1/posts")).json()["items"] == []
    assert (await tenant.get("/v1/posts/export")).text.count("\n") == 1  # the header alone
    assert await api_store.next_due_at() is None
    gated.go.set()
    await imports.runner.join(job.id)
    assert_failed((await tenant.get(f"/v1/imports/{job.id}")).json())
    assert await stored(api_store, tenant) == 0
    assert await claimed(api_store) == 0
    await imports.runner.close()


async def test_an_import_refused_for_its_workspace_is_never_read(tenant, app, api_store):
    """A workspace at ``import_max_running`` is told so before its upload is read: a refusal
    costs the API nothing (it used to spool and parse the header first)."""
    running = ImportJob(new_id("imp"), tenant.workspace_id, runner="elsewhere")
    assert await api_store.add_import(running, max_running=1)
    pulled = []

    async def body():
        pulled.append(1)
        yield b"channel_ids\n"

    imports = service(app, api_store, max_running=1)
    with pytest.raises(TooManyRequests):
        await imports.submit(tenant.workspace_id, body())
    assert pulled == []
    await imports.runner.close()


async def test_a_cursor_past_any_line_is_refused(tenant, app):
    """Lines are 32-bit in the store: a made-up cursor past them is a 422, not a store error."""
    channel = await tenant.channel()
    job = await imported(tenant, app, f"channel_ids,text\n{channel['id']},x\n")
    for line in (2**31 - 1, 2**31, 2**63, 10**30):
        cursor = base64.urlsafe_b64encode(f"line:{line}".encode()).decode().rstrip("=")
        page = await tenant.get(job["posts_url"], params={"cursor": cursor})
        if line < 2**31:
            assert page.json()["items"] == []
        else:
            assert_problem(page, 422, "cursor")


def _spooled(folder: str) -> set[Path]:
    return set(Path(folder).glob("herald-import-*"))


async def test_a_disk_with_no_room_left_is_a_503_to_try_later(tenant, app, monkeypatch):
    """The spool's disk full (or the quota reached) is no fault of the request: a 503 with
    Retry-After, and nothing left behind."""
    folder = app.state.services.imports.runner.spool_dir or tempfile.gettempdir()
    before = _spooled(folder)
    real = os.fdopen

    class Full:
        def __init__(self, file):
            self._file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(imports_module.os, "fdopen", lambda fd, mode: Full(real(fd, mode)))
    channel = await tenant.channel()
    answer = await upload(tenant, f"channel_ids,text\n{channel['id']},x\n")
    problem = assert_problem(answer, 503)
    assert problem["type"] == "urn:herald:problem:service-unavailable"
    assert int(answer.headers["retry-after"]) > 0
    assert _spooled(folder) == before
    assert (await tenant.get("/v1/imports")).json()["items"] == []


async def test_a_failed_import_keeps_its_problems_short_and_lists_leave_them_out(tenant, app):
    """What a failed job keeps is bounded whatever the file holds: an id longer than any id is
    refused without being quoted, what is quoted of the file is cut, the problems kept hold
    64 KiB at most; and a listing of jobs carries none of them (read one job for them)."""
    due = later()
    long_ids = "".join(f"{'x' * 16_000}{i:05d},{due}\n" for i in range(40))
    header = "channel_ids,scheduled_at," + "y" * 5_000
    jobs = [
        await imported(tenant, app, "channel_ids,scheduled_at\n" + long_ids),
        await imported(tenant, app, "channel_ids,scheduled_at\n" + "ch_1,tomorrow\n" * 40),
    ]
    problem = assert_problem(await upload(tenant, f"{header}\nch_1,{due},z\n"), 422)
    assert len(str(problem)) < 2_000, problem
    for job in jobs:
        assert_failed(job, "channel_ids" if job is jobs[0] else "scheduled_at")
        assert len(json.dumps(job["errors"])) < 70_000
        assert all(len(e["message"]) <= 300 for e in job["errors"])
    assert "x" * 100 not in json.dumps(jobs[0])
    listed = (await tenant.get("/v1/imports")).json()["items"]
    assert [j["id"] for j in listed] == [j["id"] for j in jobs]
    assert all("errors" not in j for j in listed)
    assert (await tenant.get(f"/v1/imports/{jobs[1]['id']}")).json()["errors"] == jobs[1]["errors"]


async def test_finished_imports_are_purged_after_their_retention_their_posts_stay(
    tenant, app, api_store
):
    channel = await tenant.channel()
    job = await imported(
        tenant, app, f"channel_ids,text,scheduled_at\n{channel['id']},x,{later()}\n"
    )
    limits = ImportLimits(retention_s=60)
    runner = ImportRunner(store=api_store, posts=app.state.services.posts, limits=limits)
    assert await runner.purge() == 0  # finished a moment ago
    later_runner = ImportRunner(
        store=api_store,
        posts=app.state.services.posts,
        limits=limits,
        clock=lambda: utcnow() + timedelta(minutes=2),
    )
    assert await later_runner.purge() == 2  # its line, then the job
    assert_problem(await tenant.get(f"/v1/imports/{job['id']}"), 404)
    assert await stored(api_store, tenant) == 1


# -- what an import costs the others -------------------------------------------------------------
async def test_an_import_never_holds_its_file_in_memory(tenant, app, api_store):
    """The body is spooled to disk as it arrives and read back a line at a time, and batches
    are bounded by their texts too: the Python heap of a 7 MB import stays under a quarter of
    the file (about 0.8 MB; read whole, then decoded, then every row, it was several times
    the file)."""
    channel = await tenant.channel()
    data = rows_of(channel["id"], 2400, text="x" * 3000)
    imports = service(app, api_store, max_rows=5000, max_deliveries=5000)
    tracemalloc.start()
    try:
        job = await imports.submit(tenant.workspace_id, chunks(data))
        await imports.runner.join(job.id)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await imports.runner.close()
    assert (await api_store.get_import(job.id)).state is ImportState.SUCCEEDED
    assert await stored(api_store, tenant) == 2400
    assert peak < len(data) / 4, (peak, len(data))


async def test_an_import_leaves_the_event_loop_to_other_requests(
    tenant, other, app, api_store, monkeypatch
):
    """While one workspace's import runs, another's requests are answered: the import offers
    the event loop back after every row (its pacer gives it once a few milliseconds of work
    have passed) instead of holding it for the whole file."""
    mine = [await tenant.channel(), await tenant.channel(Platform.LINKEDIN)]
    targets = " ".join(c["id"] for c in mine)
    imports = service(app, api_store, max_rows=5000, max_deliveries=10_000)
    watch = StepWatch(monkeypatch)
    job = await imports.submit(tenant.workspace_id, chunks(rows_of(targets, 3000)))
    task = asyncio.ensure_future(imports.runner.join(job.id))
    answered = 0
    while not task.done():
        answered += (await other.get("/v1/posts")).status_code == 200
    await imports.runner.close()
    assert (await api_store.get_import(job.id)).state is ImportState.SUCCEEDED
    assert answered > 10
    assert watch.most_rows <= 2, watch.most_rows  # the header and a row, then one at a time


async def test_an_import_that_waited_its_turn_does_not_pause_for_the_wait(tenant, app, monkeypatch):
    """A process works on ``api.import_workers`` imports at once, the others wait queued.
    Their pacer used to count that wait as work, and pause as long once started: each import
    queued behind others took about twice as long as the one before it (ten files of 200 rows
    sent at once: the last one done after about 100 s, bench/load/drive.py)."""
    clock, pauses = _Stopwatch(), []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(import_work, "time", clock)
    monkeypatch.setattr(import_work, "asyncio", SimpleNamespace(sleep=sleep))
    channel = await tenant.channel()
    runner = app.state.services.imports.runner
    async with runner._slots:  # the process's one worker is busy with another import
        answer = await upload(
            tenant, f"channel_ids,text,scheduled_at\n{channel['id']},x,{later()}\n"
        )
        assert answer.status_code == 202, answer.text
        clock.now += 30.0  # it waits its turn that long
    await runner.join(answer.json()["id"])
    job = await tenant.client.get(answer.headers["location"], headers=tenant.headers)
    assert job.json()["state"] == "succeeded"
    assert pauses == []  # no work was done yet: nothing to pause for


async def test_an_import_holds_no_slot_lock_outside_its_batches(tenant, other, app, api_store):
    """An import with a ``next_free_slot`` column picks its rows' slots batch by batch, under
    that batch's locks only. Validated and not yet storing, it holds none: free-slot requests
    (SQLite has one slot lock for the whole file: any workspace's) are answered meanwhile,
    where they used to wait for the whole import; and every slot is still given once."""
    days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    slots = {"slots": [{"day": d, "time": "09:00"} for d in days]}
    mine, theirs = await tenant.channel(), await other.channel()
    for owner, channel in ((tenant, mine), (other, theirs)):
        assert (await owner.put(f"/v1/channels/{channel['id']}/schedule", slots)).status_code == 200
    paused = PausedBeforeWriting(api_store)
    imports = service(app, paused)
    rows = "".join(f"{mine['id']},row {i},true\n" for i in range(3))
    data = f"channel_ids,text,next_free_slot\n{rows}".encode()
    job = await imports.submit(tenant.workspace_id, chunks(data))
    await asyncio.wait_for(paused.reached.wait(), 30)

    def free(owner, channel):
        body = {"channel_ids": [channel["id"]], "content": {"text": "y"}, "next_free_slot": True}
        return owner.post("/v1/posts", body)

    answers = await asyncio.wait_for(
        asyncio.gather(free(tenant, mine), free(other, theirs), free(tenant, mine)), 10
    )
    assert [a.status_code for a in answers] == [201] * 3
    paused.go.set()
    await imports.runner.join(job.id)
    assert (await api_store.get_import(job.id)).state is ImportState.SUCCEEDED
    posts = (await tenant.get("/v1/posts", params={"limit": 100})).json()["items"]
    times = [d["scheduled_at"] for p in posts for d in p["deliveries"]]
    assert len(times) == 5
    assert len(set(times)) == 5, sorted(times)  # the import's three came after the two
    await imports.runner.close()


async def test_an_import_and_requests_for_free_slots_at_once_get_distinct_slots(tenant, app):
    """The import picks its rows' free slots while validating and stores them later; requests
    for free slots meanwhile must not be given the same ones."""
    channel = await tenant.channel()
    days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    slots = [{"day": d, "time": "09:00"} for d in days]
    await tenant.put(f"/v1/channels/{channel['id']}/schedule", {"slots": slots})
    rows = "".join(f"{channel['id']},row {i},true\n" for i in range(5))
    body = {"channel_ids": [channel["id"]], "content": {"text": "x"}, "next_free_slot": True}
    job, *answers = await asyncio.gather(
        imported(tenant, app, "channel_ids,text,next_free_slot\n" + rows),
        *(tenant.post("/v1/posts", body) for _ in range(5)),
    )
    assert job["state"] == "succeeded", job
    assert [a.status_code for a in answers] == [201] * 5
    posts = (await tenant.get("/v1/posts", params={"limit": 100})).json()["items"]
    times = [d["scheduled_at"] for p in posts for d in p["deliveries"]]
    assert len(times) == 10
    assert len(set(times)) == 10, sorted(times)
