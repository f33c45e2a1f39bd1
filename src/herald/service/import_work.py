"""One CSV import job's work, step by step; :mod:`herald.service.import_runner` runs it in the
background.

1. **validating**: the uploaded file (spooled to disk) is read one line at a time and every
   row is checked as a post would be (:meth:`PostService.check_row`), the whole file before
   anything is stored. What is kept meanwhile is small and bounded by the limits: each
   delivery's due time (8 bytes), and the problems (the first :data:`MAX_PROBLEMS`, at most
   :data:`MAX_PROBLEM_CHARS` of text). Any problem: the job fails with them, and nothing is
   stored.
2. **writing**: the file is read again and its posts stored in batches of about
   :data:`BATCH_DELIVERIES` deliveries, one transaction each, *held* (their deliveries are not
   claimable, nor changed by any user: :class:`herald.types.ImportJobs`). Once all are stored
   the job is *committed*, their deliveries are made due in batches, the job **succeeded**,
   and the engine told.

Rows asking for their channels' next free slot (``next_free_slot``) get it as they are
stored, not when validated: each batch takes the slot locks of its rows' channels, searches
their free slots (what is stored already, the import's own held deliveries included, is
busy) and stores the batch under them, then lets go. A validation's search only tells
whether a slot can be found at all. So an import holds slot locks for one batch at a time,
never for the job: a free-slot request waits for one batch at most (on PostgreSQL only one on
the batch's channels; SQLite's one slot lock covers the file), never for the whole import.

If writing fails (the store, a channel deleted meanwhile, no free slot left), what was stored
is removed and the job fails: an import is stored whole or not at all. A job taken over from
a process that stopped (:meth:`ImportWork.recover`) is finished if it was committed, else
cleaned up the same way and failed as interrupted; it never resumes, so it can never store a
row twice.

The work is CPU-bound Python on the event loop the API answers on, and writes that keep the
store busy: it yields whenever :data:`SLICE_S` has passed without a pause (:class:`Pacer`), so
another tenant's request waits at most that long for each of its own steps, and then stays
away in proportion, so that it takes at most ``api.import_loop_share`` (half) of the time.
Yielding alone was not enough: the store's SQLite threads need the interpreter's lock to hand
a read back, and a database busy with an import's batches back to back is slower for every
other client (another tenant's p99 over HTTP, in bench/imports.py: about 6x its idle figure
with yields alone, within 2x at half the time).
"""

from __future__ import annotations

import asyncio
import logging
import time
from array import array
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from herald.backoff import Backoff
from herald.config import ApiSettings
from herald.domain import Channel, ImportJob, ImportState, NewPost
from herald.errors import (
    Conflict,
    FieldProblem,
    HeraldError,
    InputErrors,
    ScheduleError,
    StoreError,
)
from herald.service.csv_lines import blocks
from herald.service.post_csv import Row, column_of, parse_posts
from herald.service.posts import PostDraft, PostService
from herald.service.scheduling import NextFreeSlot, SlotBook
from herald.types import Notify, Store

__all__ = [
    "BATCH_DELIVERIES",
    "INTERRUPTED",
    "MAX_MESSAGE_CHARS",
    "MAX_PROBLEMS",
    "MAX_PROBLEM_CHARS",
    "SLICE_S",
    "ImportLimits",
    "ImportWork",
    "Pacer",
]

log = logging.getLogger("herald.imports")

#: The problems a failed job keeps (and lists); the rest are only counted. A file of 10,000
#: rows naming 50 unknown channels each has 500,000 of them. Each message is cut at
#: MAX_MESSAGE_CHARS, and the problems kept hold MAX_PROBLEM_CHARS of text at most: a failed
#: job reads back in a few tens of kilobytes, whatever its file held.
MAX_PROBLEMS = 1_000
MAX_MESSAGE_CHARS = 300
MAX_PROBLEM_CHARS = 65_536
#: Deliveries stored (or made due, or removed) per transaction, about: a batch holds whole
#: posts, at most :data:`BATCH_POSTS` of them, and about :data:`BATCH_CHARS` of their texts
#: (a post's text may be 63,206 characters: what a batch holds in memory stays small).
BATCH_DELIVERIES = 100
BATCH_POSTS = 500
BATCH_CHARS = 262_144
#: The longest the work runs on the event loop without yielding, in seconds.
SLICE_S = 0.002
#: Progress is saved every so many rows while validating.
PROGRESS_ROWS = 500
INTERRUPTED = (
    "the API process working on this import stopped before it was done; nothing was "
    "imported: send the file again"
)

T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """What one import may hold, and how the API processes share the work."""

    max_rows: int = 10_000
    max_deliveries: int = 100_000
    max_running: int = 2  # per workspace: queued, validating or writing
    workers: int = 1  # per API process
    lease_s: float = 30.0
    loop_share: float = 0.5  # of the event loop's time, per import
    retention_s: float = 2_592_000.0  # finished jobs are purged this long after (30 days)

    @classmethod
    def from_settings(cls, api: ApiSettings) -> ImportLimits:
        return cls(
            max_rows=api.import_max_rows,
            max_deliveries=api.import_max_deliveries,
            max_running=api.import_max_running,
            workers=api.import_workers,
            lease_s=api.import_lease_s,
            loop_share=api.import_loop_share,
            retention_s=api.import_retention_s,
        )


class Pacer:
    """Yields to the event loop once ``slice_s`` has passed since it last did, and stays away
    in proportion, so that the work takes at most ``share`` of the time: its own on the event
    loop, and the store's for it (a batch the database took 50 ms to write is followed by a
    50 ms pause at half the time), which the database's other clients need as well."""

    def __init__(self, share: float = 1.0, slice_s: float = SLICE_S) -> None:
        self._slice_s = slice_s
        self._rest = 1 / share - 1  # seconds of pause per second of work
        self._since = time.perf_counter()

    def restart(self) -> None:
        """The work begins now: the time before (a job waiting its turn) is not work."""
        self._since = time.perf_counter()

    async def tick(self) -> None:
        worked_s = time.perf_counter() - self._since
        if worked_s >= self._slice_s:
            await asyncio.sleep(worked_s * self._rest)
            self._since = time.perf_counter()


@dataclass
class _Checked:
    """What validating the whole file leaves for writing it."""

    # Per delivery, in µs: the time writing gives it (a free slot's is only a preview).
    due: array[int] = field(default_factory=lambda: array("q"))
    rows: int = 0
    deliveries: int = 0
    channels: set[str] = field(default_factory=set)
    problems: list[FieldProblem] = field(default_factory=list)
    problem_chars: int = 0
    more_problems: int = 0  # beyond MAX_PROBLEMS or MAX_PROBLEM_CHARS

    def add_problems(self, found: list[FieldProblem]) -> None:
        for problem in map(_short, found):
            size = len(problem.message) + len(problem.field or "")
            full = len(self.problems) >= MAX_PROBLEMS
            if full or self.problem_chars + size > MAX_PROBLEM_CHARS:
                self.more_problems += 1
                continue
            self.problems.append(problem)
            self.problem_chars += size

    def add_post(self, new: NewPost) -> None:
        self.due.extend((d.due_at - _EPOCH) // _US for d in new.deliveries)


@dataclass(frozen=True, slots=True)
class _Pending:
    """A row on its way to the store, with its due times (one per channel, in order)."""

    line: int
    draft: PostDraft
    due: list[datetime]

    @property
    def slotted(self) -> bool:
        return isinstance(self.draft.when, NextFreeSlot)


class ImportWork:
    """The work on one job, for the runner holding it (``job.runner``)."""

    def __init__(
        self,
        job: ImportJob,
        *,
        store: Store,
        posts: PostService,
        limits: ImportLimits,
        notify: Notify | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.job = job
        self._store = store
        self._posts = posts
        self._limits = limits
        self._notify = notify
        self._clock = clock
        self._pacer = Pacer(limits.loop_share)

    @property
    def _log_extra(self) -> dict[str, Any]:
        return {"import_id": self.job.id, "workspace_id": self.job.workspace_id}

    # -- the steps ------------------------------------------------------------------------
    async def run(self, spool: Path) -> None:
        """Validate the file at ``spool``, then store it, or fail with its problems."""
        self._pacer.restart()
        await self._save(state=ImportState.VALIDATING)
        checked = await self._validate(spool)
        if checked is None:
            return
        await self._save(
            state=ImportState.WRITING,
            rows_total=checked.rows,
            rows_validated=checked.rows,
            deliveries=checked.deliveries,
        )
        try:
            first_due = await self._write(spool, checked)
            await self._channels_still_live(checked.channels)
        except Conflict:
            raise  # another runner holds the job: it is theirs to finish
        except HeraldError as exc:
            log.warning("import.write_failed", extra={**self._log_extra, "error": str(exc)})
            await self._discard()
            await self._fail(*_write_failure(exc))
            return
        await self._save(committed=True)
        await self._release()
        await self._succeed(first_due)

    async def recover(self) -> None:
        """Finish a job taken over from a runner that stopped: make its posts due if it had
        stored them all, else remove what it stored and fail it as interrupted."""
        self._pacer.restart()
        log.warning("import.taken_over", extra={**self._log_extra, "committed": self.job.committed})
        if self.job.committed:
            await self._release()
            await self._succeed(None)
        else:
            await self._discard()
            await self._fail(INTERRUPTED, ())

    # -- validating -----------------------------------------------------------------------
    async def _validate(self, spool: Path) -> _Checked | None:
        """Every row checked: what writing needs, or None once the job failed."""
        known = {c.id: c for c in await self._store.list_channels(self.job.workspace_id)}
        book = self._posts.scheduler.book()  # no lock: its free slots are previews
        checked = _Checked()
        try:
            async with aclosing(self._rows(spool)) as rows:
                async for line, row in rows:
                    await self._check(line, row, known, book, checked)
                    if checked.rows % PROGRESS_ROWS == 0:
                        await self._save(rows_validated=checked.rows, deliveries=checked.deliveries)
                    await self._pacer.tick()
        except InputErrors as exc:  # the file itself: its encoding, header, size
            named = [FieldProblem(column_of(p.field), p.message, p.line) for p in exc.problems]
            await self._fail(exc.message, named, rows_validated=checked.rows)
            return None
        counts = {"rows_total": checked.rows, "rows_validated": checked.rows}
        if checked.problems or checked.more_problems:
            await self._fail(_summary(checked), checked.problems, **counts)
            return None
        if checked.rows == 0:
            empty = "the file holds no posts"
            await self._fail(empty, [FieldProblem("body", empty)], **counts)
            return None
        return checked

    async def _rows(self, spool: Path) -> AsyncGenerator[Row]:
        """The file's rows, read again from the start; long stretches of blank lines pause
        (:class:`Pacer`) as rows do."""
        with spool.open("rb") as file:
            for item in parse_posts(blocks(file), max_rows=self._limits.max_rows):
                if item is None:
                    await self._pacer.tick()
                else:
                    yield item

    async def _check(
        self,
        line: int,
        row: PostDraft | list[FieldProblem],
        known: Mapping[str, Channel],
        book: SlotBook,
        checked: _Checked,
    ) -> None:
        checked.rows += 1
        if not isinstance(row, PostDraft):
            checked.add_problems([FieldProblem(p.field, p.message, line) for p in row])
            return
        checked.deliveries += len(row.channel_ids)
        if checked.deliveries > self._limits.max_deliveries:
            top = self._limits.max_deliveries
            raise InputErrors(
                f"the file has more than {top} deliveries (rows x their channels)",
                [FieldProblem("body", f"at most {top} deliveries per import", line)],
            )
        found = await self._posts.check_row(self.job.workspace_id, row, known, book)
        if isinstance(found, NewPost):
            checked.add_post(found)
            checked.channels.update(row.channel_ids)
        else:
            checked.add_problems([FieldProblem(column_of(p.field), p.message, line) for p in found])

    # -- writing --------------------------------------------------------------------------
    async def _write(self, spool: Path, checked: _Checked) -> datetime | None:
        """Store the validated file's posts, held, in batches, with ids of their own: a fixed
        time as validated, a free slot as found under its channels' locks for its batch.
        Return the earliest due time stored."""
        known = {c.id: c for c in await self._store.list_channels(self.job.workspace_id)}
        book = self._posts.scheduler.book()  # across batches: days found full stay so
        batch: list[_Pending] = []
        first: datetime | None = None
        size = chars = index = 0
        async with aclosing(self._rows(spool)) as rows:
            async for line, row in rows:
                draft = _draft(row, line)
                count = len(draft.channel_ids)
                due = [_EPOCH + v * _US for v in checked.due[index : index + count]]
                index += count
                batch.append(_Pending(line, draft, due))
                size, chars = size + count, chars + _chars(draft)
                if size >= BATCH_DELIVERIES or len(batch) >= BATCH_POSTS or chars >= BATCH_CHARS:
                    first = _earliest(first, await self._store_batch(batch, known, book))
                    batch, size, chars = [], 0, 0
                await self._pacer.tick()  # never under the batch's slot locks
        if batch:
            first = _earliest(first, await self._store_batch(batch, known, book))
        return first

    async def _store_batch(
        self, batch: list[_Pending], known: Mapping[str, Channel], book: SlotBook
    ) -> datetime:
        """Store one batch; its rows asking for free slots get them under the slot locks of
        their channels, held from the search until the batch is stored. The earliest due
        time stored."""
        slotted = sorted({c for p in batch if p.slotted for c in p.draft.channel_ids})
        whens = [NextFreeSlot()] if slotted else []
        async with self._posts.scheduler.holding(whens, slotted):
            if slotted:
                book.forget_busy()  # what others took since the last batch let go
            pending = [await self._slotted(p, known, book) if p.slotted else p for p in batch]
            ws = self.job.workspace_id
            posts = [(p.line, self._posts.imported_post(ws, p.draft, p.due)) for p in pending]
            job = replace(self.job, posts_written=self.job.posts_written + len(batch))
            await self._store.add_import_posts(job, posts)
        self.job = job
        return min(at for p in pending for at in p.due)

    async def _slotted(
        self, row: _Pending, known: Mapping[str, Channel], book: SlotBook
    ) -> _Pending:
        """``row`` with the next free slot of each of its channels (under their locks)."""
        gone = [c for c in row.draft.channel_ids if c not in known]
        if gone:  # deleted since the write began
            problem = FieldProblem("channel_ids", f"channel {gone[0]!r} was deleted", row.line)
            raise InputErrors("a channel of the file was deleted during the import", [problem])
        channels = [known[c] for c in row.draft.channel_ids]
        try:
            due = await self._posts.scheduler.due_times(NextFreeSlot(), channels, book)
        except ScheduleError as exc:  # taken since it was validated
            problem = FieldProblem("next_free_slot", exc.message, row.line)
            raise InputErrors(f"line {row.line}: {exc.message}", [problem]) from None
        return replace(row, due=due)

    async def _channels_still_live(self, used: set[str]) -> None:
        """A channel deleted while the file was stored cancelled its deliveries but not the
        held ones stored after: refuse the file, as it would have been refused before."""
        live = {c.id for c in await self._store.list_channels(self.job.workspace_id)}
        gone = sorted(used - live)
        if gone:
            problems = [FieldProblem("channel_ids", f"channel {c!r} was deleted") for c in gone]
            raise InputErrors("a channel of the file was deleted during the import", problems)

    async def _release(self) -> None:
        """Make every held delivery of the job due, batch by batch."""
        await self._each_batch(self._store.release_import)

    async def _discard(self) -> None:
        """Remove every post the job stored, with its deliveries (none was ever sent)."""
        await self._each_batch(self._store.discard_import)

    async def _each_batch(self, step: Callable[..., Awaitable[int | None]]) -> None:
        """``step`` (:meth:`ImportJobs.release_import` or ``discard_import``) over the job's
        lines, batch after batch, each retried until the store answers: once begun, finishing
        or cleaning up a job must happen."""
        after: int | None = 0
        lines = self._lines_per_batch()
        while after is not None:
            call = partial(step, self.job.id, self._runner, after_line=after, limit=lines)
            after = await self._retried(call)
            await self._pacer.tick()

    def _lines_per_batch(self) -> int:
        per_post = self.job.deliveries / max(1, self.job.rows_validated or 1)
        return max(1, min(BATCH_POSTS, int(BATCH_DELIVERIES / max(1.0, per_post))))

    @property
    def _runner(self) -> str:
        return self.job.runner or ""

    async def _retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until the store answers: cleaning up or finishing a job must happen,
        and only a stop (cancellation) or losing the job (:class:`Conflict`) ends it."""
        backoff = Backoff(base_s=0.2, cap_s=10.0)
        while True:
            try:
                return await call()
            except Conflict:
                raise
            except StoreError as exc:
                delay_s = backoff.next_s()
                log.warning(
                    "import.store_retry",
                    extra={**self._log_extra, "error": str(exc), "delay_s": delay_s},
                )
                await asyncio.sleep(delay_s)

    # -- the job's record -----------------------------------------------------------------
    async def _save(self, **changes: Any) -> None:
        job = replace(self.job, **changes)
        await self._store.save_import(job)
        self.job = job

    async def _fail(
        self, detail: str, problems: list[FieldProblem] | tuple[FieldProblem, ...], **counts: Any
    ) -> None:
        await self._retried(
            lambda: self._save(
                state=ImportState.FAILED,
                detail=_short(FieldProblem(None, detail)).message,
                errors=tuple(map(_short, problems[:MAX_PROBLEMS])),
                posts_written=0,
                finished_at=self._clock(),
                **counts,
            )
        )
        log.info("import.failed", extra={**self._log_extra, "detail": detail})

    async def _succeed(self, first_due: datetime | None) -> None:
        await self._retried(
            lambda: self._save(state=ImportState.SUCCEEDED, finished_at=self._clock())
        )
        log.info("import.succeeded", extra={**self._log_extra, "posts": self.job.posts_written})
        if self._notify is not None:
            # The earliest due time, known when the file was validated here; a job finished
            # after a take-over only knows that deliveries became due: look now.
            self._notify(first_due)


def _draft(row: PostDraft | list[FieldProblem], line: int) -> PostDraft:
    """A row of a file validated without a problem reads as the same draft again."""
    if not isinstance(row, PostDraft):
        raise StoreError(f"line {line} of the spooled import file reads differently")
    return row


def _write_failure(exc: HeraldError) -> tuple[str, tuple[FieldProblem, ...]]:
    """What a job that failed while writing tells its tenant: the file's problem, or that the
    store failed (never the store's own words, which are the operator's)."""
    if isinstance(exc, InputErrors):
        return f"{exc.message}; nothing was imported", exc.problems
    if isinstance(exc, StoreError):
        return "the store failed while the file was stored; nothing was imported: send it again", ()
    return f"{exc}; nothing was imported", ()


def _earliest(first: datetime | None, at: datetime) -> datetime:
    return at if first is None else min(first, at)


def _short(problem: FieldProblem) -> FieldProblem:
    """``problem`` with its message and field cut to :data:`MAX_MESSAGE_CHARS`."""
    message, field_name = problem.message, problem.field
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3] + "..."
    if field_name is not None and len(field_name) > MAX_MESSAGE_CHARS:
        field_name = field_name[:MAX_MESSAGE_CHARS]
    return FieldProblem(field_name, message, problem.line)


def _chars(draft: PostDraft) -> int:
    """The bulk of a post in memory: its texts (URLs and titles are bounded and short)."""
    return len(draft.content.text) + sum(len(o.text or "") for o in draft.overrides.values())


def _summary(checked: _Checked) -> str:
    total = len(checked.problems) + checked.more_problems
    listed = f"; the first {len(checked.problems)} are listed" if checked.more_problems else ""
    return f"{total} problem(s) in the file{listed}; nothing was imported"
