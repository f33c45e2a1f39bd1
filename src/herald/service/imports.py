"""CSV imports as a tenant sees them: a file handed in, a job to follow, the posts it made.

:meth:`ImportService.submit` looks at the workspace's unfinished imports first (one over
``api.import_max_running`` is refused before its body is read,
:class:`~herald.errors.TooManyRequests`), reads the request body in chunks into a private
file on disk (``api.import_spool_dir``; the body is bounded by ``api.import_max_bytes`` before
it is read; a disk with no room left is a :class:`~herald.errors.ServiceUnavailable`), reads
its header row in a thread (a file whose header an import does not take is refused at once,
:class:`~herald.errors.InputErrors`), adds the job unless the workspace has reached its
unfinished ones meanwhile (the store decides, atomically), and hands it to the process's
:class:`~herald.service.import_runner.ImportRunner`. The reads check every job against the
caller's workspace and answer :class:`~herald.errors.NotFound` otherwise, as every other
object of another workspace is answered.

Listings are cut by opaque cursors: the jobs by (created_at, id), as posts are
(:class:`herald.service.posts.Cursor`), a job's posts by their line in the file
(:class:`LineCursor`). A listing of jobs leaves their problems out (the store's
``list_imports``): they are read one job at a time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import os
import tempfile
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

from herald.domain import ImportJob, new_id
from herald.errors import InvalidInput, NotFound, ServiceUnavailable, TooManyRequests
from herald.service.base import Service
from herald.service.csv_lines import blocks
from herald.service.import_runner import SPOOL_PREFIX, ImportRunner
from herald.service.post_csv import check_header
from herald.service.posts import Cursor, PostView

__all__ = ["ImportService", "LineCursor"]

#: What a workspace over its running imports is told to wait, in seconds: a guess, as an
#: import takes from a second to a minute or so.
RETRY_AFTER_S = 10
#: What an upload refused for want of disk space is told to wait, in seconds: until the
#: operator (alerted by the api.service_unavailable log line) or finished jobs free some.
DISK_FULL_RETRY_AFTER_S = 60
#: A job's lines are stored as 32-bit integers (PostgreSQL's integer): a cursor past the last
#: one is refused, not sent to the store.
MAX_LINE = 2**31 - 1
_BAD_CURSOR = "the cursor is not one this API handed out"
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class LineCursor:
    """A position in an import's posts: the file line of the last one seen; opaque to callers."""

    line: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"line:{self.line}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> LineCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            kind, _, line = raw.partition(":")
            if kind != "line" or not line.isdigit() or int(line) > MAX_LINE:
                raise ValueError(raw)
            return cls(int(line))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidInput(_BAD_CURSOR, field="cursor") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportService(Service):
    runner: ImportRunner

    async def submit(self, workspace_id: str, body: AsyncIterable[bytes]) -> ImportJob:
        """Spool ``body`` and start its import job; the job as added (``queued``)."""
        top = self.runner.limits.max_running
        if await self.store.running_imports(workspace_id) >= top:
            raise _too_many(top)  # before the body is read: a refusal costs nothing
        import_id = new_id("imp")
        spool = await self._spool(body, import_id)
        try:
            # In a thread: a header row may take 2 MiB (MAX_ROW_BYTES), too long a step for
            # the event loop.
            await asyncio.to_thread(_check_header, spool)
            now = self.clock()
            job = ImportJob(
                id=import_id,
                workspace_id=workspace_id,
                runner=self.runner.id,
                lease_until=self.runner.lease_until(),
                created_at=now,
                updated_at=now,
            )
            if not await self.store.add_import(job, max_running=top):
                raise _too_many(top)
        except BaseException:
            await asyncio.to_thread(spool.unlink, missing_ok=True)
            raise
        self.runner.submit(job, spool)
        return job

    async def _spool(self, body: AsyncIterable[bytes], import_id: str) -> Path:
        """The body in a new file only this process's user can read (mkstemp), written as it
        arrives: a large upload never sits in memory whole. Named after its job, so that a
        process taking the job over on this machine can remove it (a process killed before
        its job read the file leaves it behind)."""
        folder = self.runner.spool_dir
        prefix = f"{SPOOL_PREFIX}{import_id}-"
        path: Path | None = None
        try:
            if folder is not None:
                await asyncio.to_thread(Path(folder).mkdir, parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=".csv", dir=folder)
            path = Path(name)
            with os.fdopen(fd, "wb") as out:
                async for chunk in body:
                    out.write(chunk)
        except BaseException as exc:
            if path is not None:
                await asyncio.to_thread(path.unlink, missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in _NO_ROOM:
                raise ServiceUnavailable(
                    "the server has no room to take the file now: send it again later",
                    retry_after_s=DISK_FULL_RETRY_AFTER_S,
                ) from exc
            raise
        return path

    async def get(self, workspace_id: str, import_id: str) -> ImportJob:
        job = await self.store.get_import(import_id)
        if job.workspace_id != workspace_id:
            raise NotFound("import", import_id)
        return job

    async def page(
        self, workspace_id: str, *, after: Cursor | None, limit: int
    ) -> tuple[list[ImportJob], Cursor | None]:
        """One page of the workspace's imports (oldest first) and the next page's cursor."""
        position = None if after is None else (after.created_at, after.post_id)
        jobs = await self.store.list_imports(workspace_id, after=position, limit=limit + 1)
        more = len(jobs) > limit
        jobs = jobs[:limit]
        following = Cursor(jobs[-1].created_at, jobs[-1].id) if more else None
        return jobs, following

    async def posts(
        self, workspace_id: str, import_id: str, *, after: LineCursor | None, limit: int
    ) -> tuple[list[tuple[int, PostView]], LineCursor | None]:
        """One page of the posts the import stored, each with its line, in file order."""
        await self.get(workspace_id, import_id)
        found = await self.store.list_import_posts(
            import_id, after_line=0 if after is None else after.line, limit=limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        grouped = await self.store.deliveries_of([p.id for _, p in found]) if found else {}
        views = [(line, PostView(p, grouped.get(p.id, []))) for line, p in found]
        return views, LineCursor(found[-1][0]) if more else None


def _check_header(spool: Path) -> None:
    with spool.open("rb") as file:
        check_header(blocks(file))


def _too_many(top: int) -> TooManyRequests:
    return TooManyRequests(
        f"this workspace already has {top} imports queued or running: wait for one to finish "
        "(GET /v1/imports) and send the file again",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
