"""Where CSV import jobs run: in the API process, as asyncio tasks beside the requests.

Each job is a task (:class:`herald.service.import_work.ImportWork`); at most
``api.import_workers`` of them work at once in a process, the others wait ``queued``. The
jobs live in the store, so any API process answers for any job, and a job outlives the
process that ran it:

- the runner holds each of its jobs under a lease (``api.import_lease_s``), renewed by one
  keeper task while the jobs run;
- a sweep (:meth:`ImportRunner.sweep`, at :meth:`~ImportRunner.start` and every lease from
  then on) takes over the jobs whose lease ran out, those of a process that died, and
  finishes them (:meth:`ImportWork.recover`);
- :meth:`~ImportRunner.close` stops the jobs and gives their leases up, so the next sweep,
  in this deployment's next process or any other, recovers them at once;
- each sweep also purges jobs finished more than ``api.import_retention_s`` ago
  (:meth:`ImportRunner.purge`: their records and lists of lines, never their posts), a few
  short batches at a time.

A job whose task failed unexpectedly is left to its lease in the same way: the keeper stops
renewing it, and a sweep cleans it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from herald.domain import ImportJob, new_id, utcnow
from herald.errors import Conflict, StoreError
from herald.service.import_work import ImportLimits, ImportWork, Pacer
from herald.service.posts import PostService
from herald.types import Notify, Store

__all__ = ["SPOOL_PREFIX", "ImportRunner"]

log = logging.getLogger("herald.imports")

#: The name of a spooled upload starts with it, then its job's id.
SPOOL_PREFIX = "herald-import-"
#: Rows a purge removes per transaction, and its transactions per sweep at most: a backlog
#: (a first purge after months of imports) is worked off sweep after sweep, never in one go
#: that would delay the sweep's take-overs.
PURGE_BATCH = 1_000
PURGE_BATCHES_PER_SWEEP = 10


class ImportRunner:
    """Runs this process's import jobs; ``id`` names it as the holder of their leases."""

    def __init__(
        self,
        *,
        store: Store,
        posts: PostService,
        limits: ImportLimits,
        notify: Notify | None = None,
        clock: Callable[[], datetime] = utcnow,
        spool_dir: str | None = None,
    ) -> None:
        self.id = f"{socket.gethostname()}:{os.getpid()}:{new_id('run')}"
        self.limits = limits
        #: Where uploads wait for their jobs (None: the system's temporary directory).
        self.spool_dir = spool_dir
        self._store = store
        self._posts = posts
        self._notify = notify
        self._clock = clock
        self._slots = asyncio.Semaphore(limits.workers)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._keeper: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def lease_until(self) -> datetime:
        return self._clock() + timedelta(seconds=self.limits.lease_s)

    # -- jobs ---------------------------------------------------------------------------------
    def submit(self, job: ImportJob, spool: Path) -> None:
        """Run ``job`` (added to the store with this runner's lease) on the file at ``spool``,
        which is removed once the job is done with it."""
        self._spawn(job.id, self._queued(self._work(job), spool))

    async def _queued(self, work: ImportWork, spool: Path) -> None:
        try:
            async with self._slots:
                await work.run(spool)
        finally:
            await asyncio.to_thread(spool.unlink, missing_ok=True)

    async def sweep(self) -> int:
        """Take over every job whose lease ran out and finish it; return how many."""
        taken = await self._store.take_over_imports(
            self.id, now=self._clock(), lease_until=self.lease_until()
        )
        for job in taken:
            if job.id not in self._tasks:
                await asyncio.to_thread(self._remove_spooled, job.id)
                self._spawn(job.id, self._work(job).recover())
        return len(taken)

    async def purge(self) -> int:
        """Remove jobs finished more than ``retention_s`` ago, a few batches at most, each
        followed by a pause in proportion (``loop_share``, as an import); return the rows."""
        before = self._clock() - timedelta(seconds=self.limits.retention_s)
        pacer = Pacer(self.limits.loop_share, slice_s=0)
        total = 0
        for _ in range(PURGE_BATCHES_PER_SWEEP):
            removed = await self._store.purge_imports(before, limit=PURGE_BATCH)
            total += removed
            if removed < PURGE_BATCH:
                break
            await pacer.tick()
        return total

    def _remove_spooled(self, import_id: str) -> None:
        """The upload of a job taken over, if it waits on this machine (its process died)."""
        folder = Path(self.spool_dir or tempfile.gettempdir())
        for path in folder.glob(f"{SPOOL_PREFIX}{import_id}-*.csv"):
            path.unlink(missing_ok=True)

    async def join(self, import_id: str) -> None:
        """Wait until this runner is done with ``import_id`` (at once if it does not run it)."""
        task = self._tasks.get(import_id)
        if task is not None:
            await asyncio.wait({task})

    def _work(self, job: ImportJob) -> ImportWork:
        return ImportWork(
            job,
            store=self._store,
            posts=self._posts,
            limits=self.limits,
            notify=self._notify,
            clock=self._clock,
        )

    def _spawn(self, import_id: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._guarded(import_id, work), name=f"herald-{import_id}")
        self._tasks[import_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(import_id, None))
        if self._keeper is None or self._keeper.done():
            # Of no request: a context of its own, so the request that happens to start it
            # lends it neither its API key (read positions) nor its idempotency claim.
            self._keeper = asyncio.create_task(
                self._keep(), name="herald-import-leases", context=contextvars.Context()
            )

    async def _guarded(self, import_id: str, work: Coroutine[Any, Any, None]) -> None:
        extra = {"import_id": import_id, "runner": self.id}
        try:
            await work
        except Conflict:
            log.warning("import.lost", extra=extra)  # another runner took it over
        except Exception:
            # Left to its lease: no longer renewed, it runs out and a sweep cleans up.
            log.exception("import.crashed", extra=extra)

    async def _keep(self) -> None:
        """Renew the leases of the jobs this runner works on, while there are any."""
        every_s = self.limits.lease_s / 3
        while self._tasks:
            await asyncio.sleep(every_s)
            try:
                await self._store.extend_import_leases(
                    self.id, list(self._tasks), self.lease_until()
                )
            except StoreError as exc:
                log.warning("import.lease_renewal_failed", extra={"error": str(exc)})

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Recover what stopped processes left, now and every lease from now on."""
        await self.sweep()
        self._sweeper = asyncio.create_task(
            self._sweep_every(), name="herald-import-sweeps", context=contextvars.Context()
        )

    async def _sweep_every(self) -> None:
        while True:
            await asyncio.sleep(self.limits.lease_s)
            try:
                await self.sweep()
                await self.purge()
            except StoreError as exc:
                log.warning("import.sweep_failed", extra={"error": str(exc)})

    async def close(self) -> None:
        """Stop every job here and give their leases up: the next sweep, here or in another
        process, finishes them (or removes what they stored) without waiting for them."""
        running = list(self._tasks)
        tasks = [t for t in (self._sweeper, self._keeper, *self._tasks.values()) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sweeper = self._keeper = None
        if running:
            with contextlib.suppress(StoreError):
                await self._store.extend_import_leases(self.id, running, self._clock())
