"""The Store contract, CSV import side (herald.types.ImportJobs): every store passes these."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from herald.domain import (
    ImportJob,
    ImportState,
    Transition,
    Workspace,
    new_id,
    utcnow,
)
from herald.errors import Conflict, FieldProblem, InvalidInput, NotFound
from herald.states import DeliveryState
from herald.testing import channel, new_post

S = DeliveryState
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


async def claim(store, now):
    return await store.claim_due(
        now=now, limit=1000, lease_until=now + MINUTE, expire_before=now - timedelta(days=1)
    )


class ImportContract:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def _workspace(self, store) -> Workspace:
        ws = Workspace(new_id("ws"), "Acme")
        await store.add_workspace(ws)
        return ws

    async def _job(self, store, ws, runner="r1", *, lease=MINUTE, max_running=5) -> ImportJob:
        job = ImportJob(new_id("imp"), ws.id, runner=runner, lease_until=utcnow() + lease)
        assert await store.add_import(job, max_running=max_running)
        return job

    async def _stored(self, store, ws, job, lines, *, due=None):
        """``lines`` posts of ``job`` on a channel of ``ws``, due a minute ago (or ``due``)."""
        ch = channel(workspace_id=ws.id)
        await store.add_channels([ch])
        made = [new_post([ch], due_at=due or utcnow() - MINUTE) for _ in lines]
        posts = [
            (line, replace(new, post=replace(new.post, workspace_id=ws.id)))
            for line, new in zip(lines, made, strict=True)
        ]
        await store.add_import_posts(replace(job, posts_written=len(posts)), posts)
        return ch, posts

    async def test_a_job_is_stored_read_and_listed_in_creation_order(self, store):
        ws = await self._workspace(store)
        first = await self._job(store, ws)
        second = await self._job(store, ws)
        got = await store.get_import(first.id)
        assert (got.id, got.workspace_id, got.state, got.runner) == (
            first.id,
            ws.id,
            ImportState.QUEUED,
            "r1",
        )
        assert got.created_at == first.created_at
        assert got.lease_until == first.lease_until
        assert (got.rows_total, got.rows_validated, got.posts_written, got.errors) == (
            None,
            0,
            0,
            (),
        )
        listed = await store.list_imports(ws.id)
        assert [j.id for j in listed] == [first.id, second.id]
        after = (listed[0].created_at, listed[0].id)
        assert [j.id for j in await store.list_imports(ws.id, after=after)] == [second.id]
        assert [j.id for j in await store.list_imports(ws.id, limit=1)] == [first.id]
        assert await store.list_imports((await self._workspace(store)).id) == []
        with pytest.raises(NotFound):
            await store.get_import("imp_nope")

    async def test_a_workspace_runs_at_most_max_running_jobs(self, store):
        ws, other = await self._workspace(store), await self._workspace(store)
        assert await store.running_imports(ws.id) == 0
        running = await self._job(store, ws, max_running=1)
        refused = ImportJob(new_id("imp"), ws.id, runner="r1")
        assert not await store.add_import(refused, max_running=1)
        with pytest.raises(NotFound):
            await store.get_import(refused.id)
        assert await store.add_import(ImportJob(new_id("imp"), other.id), max_running=1)
        assert (await store.running_imports(ws.id), await store.running_imports(other.id)) == (1, 1)
        done = replace(running, state=ImportState.SUCCEEDED, finished_at=utcnow())
        await store.save_import(done)
        assert await store.running_imports(ws.id) == 0
        assert await store.add_import(refused, max_running=1)

    async def test_saving_keeps_progress_and_problems_for_the_runner_only(self, store):
        ws = await self._workspace(store)
        job = await self._job(store, ws)
        problems = (FieldProblem("channel_ids", "not found", 3), FieldProblem("body", "bad"))
        failed = replace(
            job,
            state=ImportState.FAILED,
            rows_total=7,
            rows_validated=7,
            deliveries=21,
            detail="2 problems",
            errors=problems,
            finished_at=utcnow(),
        )
        with pytest.raises(Conflict):
            await store.save_import(replace(failed, runner="r2"))
        await store.save_import(replace(failed, lease_until=None))
        got = await store.get_import(job.id)
        assert got.lease_until == job.lease_until  # the keeper's, never a save's
        assert got.errors == problems
        assert (got.state, got.rows_total, got.rows_validated, got.deliveries) == (
            ImportState.FAILED,
            7,
            7,
            21,
        )
        assert (got.detail, got.finished_at) == ("2 problems", failed.finished_at)
        # A listing leaves the problems out (up to 1,000 a job): read one job for them.
        [listed] = await store.list_imports(ws.id)
        assert listed == replace(got, errors=())
        with pytest.raises(Conflict):  # finished: nothing more is written
            await store.save_import(replace(got, detail="again"))

    async def test_posts_are_stored_held_until_released(self, store):
        ws = await self._workspace(store)
        job = await self._job(store, ws)
        _, posts = await self._stored(store, ws, job, [2, 3, 5])
        assert (await store.get_import(job.id)).posts_written == 3
        now = utcnow()
        assert (await claim(store, now)).jobs == []  # due a minute ago, yet held
        assert await store.next_due_at() is None
        held = await store.deliveries_of([new.post.id for _, new in posts])
        assert all(
            d.next_attempt_at is None and d.state is S.SCHEDULED for ds in held.values() for d in ds
        )
        page = await store.list_import_posts(job.id, limit=2)
        assert [(line, p.id) for line, p in page] == [(line, n.post.id) for line, n in posts[:2]]
        rest = await store.list_import_posts(job.id, after_line=3)
        assert [line for line, _ in rest] == [5]
        assert await store.release_import(job.id, "r1", after_line=0, limit=2) == 3
        assert len((await claim(store, now)).jobs) == 2
        assert await store.release_import(job.id, "r1", after_line=3, limit=2) == 5
        assert await store.release_import(job.id, "r1", after_line=5, limit=2) is None
        [last] = (await claim(store, now)).jobs
        assert last.delivery.post_id == posts[2][1].post.id
        assert last.delivery.next_attempt_at == last.delivery.due_at

    async def test_a_batch_is_stored_whole_or_not_at_all(self, store):
        ws = await self._workspace(store)
        job = await self._job(store, ws)
        await self._stored(store, ws, job, [2])
        with pytest.raises(InvalidInput):  # line 2 again
            await self._stored(store, ws, job, [3, 2])
        assert [line for line, _ in await store.list_import_posts(job.id)] == [2]
        assert len(await store.list_posts(ws.id)) == 1

    async def test_discarding_removes_every_post_of_the_import(self, store):
        """Nothing of an import that was not committed stays: its held deliveries, one its
        channel's deletion cancelled meanwhile, even one made due by a write that is not a
        user's (no user change touches a held one: ``unheld``) go, with their posts and
        lines. None was ever sent: none was claimable."""
        ws = await self._workspace(store)
        job = await self._job(store, ws)
        ch, posts = await self._stored(store, ws, job, [2, 3, 4])
        [due, cancelled] = [
            (await store.deliveries_of([n.post.id]))[n.post.id][0] for _, n in posts[1:]
        ]
        later = utcnow() + HOUR
        made_due = Transition(due.id, S.SCHEDULED, due_at=later, next_attempt_at=later)
        # What deleting its channel does (the store's own write, not a user's transition).
        gone = Transition(cancelled.id, S.CANCELLED, error="the channel was deleted")
        assert await store.apply([made_due, gone]) == [True, True]
        assert await store.discard_import(job.id, "r1", after_line=0, limit=2) == 3
        assert await store.discard_import(job.id, "r1", after_line=3, limit=2) == 4
        assert await store.discard_import(job.id, "r1", after_line=4, limit=2) is None
        for _, new in posts:
            with pytest.raises(NotFound):
                await store.get_post(new.post.id)
            with pytest.raises(NotFound):
                await store.get_delivery(new.deliveries[0].id)
        assert await store.list_import_posts(job.id) == []
        assert await store.list_posts(ws.id) == []
        assert ch.id in {c.id for c in await store.list_channels(ws.id)}

    async def test_no_user_change_touches_a_held_delivery(self, store):
        """A user's reschedule, cancel or retry (``unheld``) is refused by the store's guarded
        write itself while an import holds the delivery: made due meanwhile, it could be
        published before the import fails and is removed. Once released, they apply."""
        ws = await self._workspace(store)
        job = await self._job(store, ws)
        _, posts = await self._stored(store, ws, job, [2])
        [held] = (await store.deliveries_of([posts[0][1].post.id]))[posts[0][1].post.id]
        assert held.held
        soon = utcnow() + MINUTE
        moved = Transition(
            held.id, S.SCHEDULED, due_at=soon, next_attempt_at=soon, unclaimed=True, unheld=True
        )
        cancelled = Transition(held.id, S.CANCELLED, error="cancelled by the user", unheld=True)
        retried = replace(moved, due_at=utcnow(), next_attempt_at=utcnow(), reset_retries=True)
        assert await store.apply([moved]) == [False]
        assert await store.apply([cancelled]) == [False]
        assert await store.apply([retried]) == [False]
        assert await store.get_delivery(held.id) == held
        assert await store.next_due_at() is None
        # The flag is the guard: the same move without it applies (what the store's own writes
        # for imports and channels may do).
        assert (await store.apply([replace(moved, unheld=False)])) == [True]
        assert not (await store.get_delivery(held.id)).held
        assert await store.apply([moved]) == [True]
        assert await store.apply([cancelled]) == [True]

    async def test_listings_can_leave_out_what_an_import_holds(self, store):
        ws = await self._workspace(store)
        job = await self._job(store, ws)
        ch, posts = await self._stored(store, ws, job, [2, 3])
        own = new_post([ch], due_at=utcnow() + MINUTE)
        await store.add_posts([replace(own, post=replace(own.post, workspace_id=ws.id))])
        everything = {p.id for p in await store.list_posts(ws.id)}
        assert everything == {own.post.id, *(n.post.id for _, n in posts)}
        shown = await store.list_posts(ws.id, with_held=False)
        assert [p.id for p in shown] == [own.post.id]
        filtered = await store.list_posts(ws.id, channel_id=ch.id, with_held=False)
        assert [p.id for p in filtered] == [own.post.id]
        assert await store.release_import(job.id, "r1", after_line=0, limit=10) == 3
        assert {p.id for p in await store.list_posts(ws.id, with_held=False)} == everything

    async def test_finished_jobs_are_purged_in_batches_their_posts_stay(self, store):
        ws = await self._workspace(store)
        now = utcnow()
        old = await self._job(store, ws)
        await self._stored(store, ws, old, [2, 3, 4])
        await store.release_import(old.id, "r1", after_line=0, limit=10)
        await store.save_import(
            replace(old, posts_written=3, state=ImportState.SUCCEEDED, finished_at=now - HOUR)
        )
        recent = await self._job(store, ws)
        await store.save_import(replace(recent, state=ImportState.FAILED, finished_at=now))
        running = await self._job(store, ws)
        before = now - MINUTE
        assert await store.purge_imports(before, limit=2) == 2  # two lines
        assert len(await store.list_import_posts(old.id)) == 1
        assert await store.purge_imports(before, limit=2) == 2  # the last line, then the job
        assert await store.purge_imports(before, limit=2) == 0
        with pytest.raises(NotFound):
            await store.get_import(old.id)
        assert {j.id for j in await store.list_imports(ws.id)} == {recent.id, running.id}
        assert len(await store.list_posts(ws.id)) == 3  # the posts are the workspace's

    async def test_lapsed_jobs_are_taken_over_and_the_old_runner_writes_nothing(self, store):
        ws = await self._workspace(store)
        lapsed = await self._job(store, ws, "old", lease=-MINUTE)
        fresh = await self._job(store, ws, "old")
        done = await self._job(store, ws, "old", lease=-MINUTE)
        await store.save_import(replace(done, state=ImportState.SUCCEEDED))
        now = utcnow()
        taken = await store.take_over_imports("new", now=now, lease_until=now + MINUTE)
        assert [(j.id, j.runner, j.lease_until) for j in taken] == [
            (lapsed.id, "new", now + MINUTE)
        ]
        assert await store.take_over_imports("other", now=now, lease_until=now + MINUTE) == []
        with pytest.raises(Conflict):
            await store.save_import(replace(lapsed, rows_validated=3))
        with pytest.raises(Conflict):
            await self._stored(store, ws, lapsed, [2])
        with pytest.raises(Conflict):
            await store.release_import(lapsed.id, "old", after_line=0, limit=10)
        with pytest.raises(Conflict):
            await store.discard_import(lapsed.id, "old", after_line=0, limit=10)
        assert await store.list_import_posts(lapsed.id) == []
        until = now + 2 * MINUTE
        ids = [lapsed.id, fresh.id, done.id]
        assert await store.extend_import_leases("old", ids, until) == 1  # fresh only
        assert (await store.get_import(fresh.id)).lease_until == until
        assert (await store.get_import(lapsed.id)).lease_until == now + MINUTE
        # A lease set in the past gives the job up: the next take-over finds it.
        assert await store.extend_import_leases("old", [fresh.id], now - MINUTE) == 1
        taken = await store.take_over_imports("other", now=now, lease_until=until)
        assert [j.id for j in taken] == [fresh.id]
