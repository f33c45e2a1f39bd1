"""The in-memory store's CSV import jobs (see :mod:`herald.stores.memory` and
:class:`herald.types.ImportJobs`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from herald.domain import Attempt, Channel, Delivery, ImportJob, NewPost, Post, Workspace, utcnow
from herald.errors import InvalidInput, NotFound
from herald.stores.contract import lost_import
from herald.stores.memory_keys import MemoryKeys

__all__ = ["MemoryImports"]


class MemoryImports(MemoryKeys):
    _workspaces: dict[str, Workspace]
    _channels: dict[str, Channel]
    _posts: dict[str, Post]
    _deliveries: dict[str, Delivery]
    _attempts: dict[str, list[Attempt]]

    def _init_imports(self) -> None:
        self._imports: dict[str, ImportJob] = {}
        self._import_posts: dict[str, dict[int, str]] = {}  # job id -> line -> post id

    async def add_import(self, job: ImportJob, *, max_running: int) -> bool:
        if job.workspace_id not in self._workspaces:
            raise NotFound("workspace", job.workspace_id)
        if job.id in self._imports:
            raise InvalidInput("an import with this id exists")
        if await self.running_imports(job.workspace_id) >= max_running:
            return False
        self._mark_claim()
        self._imports[job.id] = job
        self._import_posts[job.id] = {}
        return True

    async def running_imports(self, workspace_id: str) -> int:
        return sum(
            1
            for j in self._imports.values()
            if j.workspace_id == workspace_id and not j.state.finished
        )

    async def get_import(self, import_id: str) -> ImportJob:
        try:
            return self._imports[import_id]
        except KeyError:
            raise NotFound("import", import_id) from None

    async def list_imports(
        self, workspace_id: str, *, after: tuple[datetime, str] | None = None, limit: int = 50
    ) -> list[ImportJob]:
        jobs = sorted(
            (
                j
                for j in self._imports.values()
                if j.workspace_id == workspace_id
                and (after is None or (j.created_at, j.id) > after)
            ),
            key=lambda j: (j.created_at, j.id),
        )
        return [replace(j, errors=()) for j in jobs[:limit]]

    async def purge_imports(self, before: datetime, *, limit: int) -> int:
        done = sorted(
            (j for j in self._imports.values() if j.state.finished and j.finished_at),
            key=lambda j: j.finished_at or before,
        )
        old = [j.id for j in done if j.finished_at and j.finished_at < before]
        removed = 0
        for import_id in old:  # a batch of lines first, then the jobs left without any
            lines = self._import_posts[import_id]
            for line in sorted(lines)[: limit - removed]:
                del lines[line]
                removed += 1
        bare = [i for i in old if not self._import_posts[i]][:limit]
        for import_id in bare:
            del self._imports[import_id], self._import_posts[import_id]
        return removed + len(bare)

    def _held_by(self, import_id: str, runner: str | None) -> ImportJob:
        job = self._imports.get(import_id)
        if job is None or job.runner != runner or job.state.finished:
            raise lost_import(import_id, runner)
        return job

    async def save_import(self, job: ImportJob) -> None:
        self._held_by(job.id, job.runner)
        self._save(job)

    def _save(self, job: ImportJob) -> None:
        # What the SQL stores write (save_import): never the workspace, creation time or lease.
        old = self._imports[job.id]
        self._imports[job.id] = replace(
            job,
            workspace_id=old.workspace_id,
            created_at=old.created_at,
            lease_until=old.lease_until,
            updated_at=utcnow(),
        )

    async def extend_import_leases(
        self, runner: str, import_ids: Sequence[str], lease_until: datetime
    ) -> int:
        held = [
            job
            for job in map(self._imports.get, import_ids)
            if job is not None and job.runner == runner and not job.state.finished
        ]
        for job in held:
            self._imports[job.id] = replace(job, lease_until=lease_until)
        return len(held)

    async def take_over_imports(
        self, runner: str, *, now: datetime, lease_until: datetime
    ) -> list[ImportJob]:
        taken = []
        for job in list(self._imports.values()):
            lapsed = job.lease_until is None or job.lease_until < now
            if not job.state.finished and lapsed:
                held = replace(job, runner=runner, lease_until=lease_until, updated_at=now)
                self._imports[job.id] = held
                taken.append(held)
        return sorted(taken, key=lambda j: (j.created_at, j.id))

    async def add_import_posts(self, job: ImportJob, posts: Sequence[tuple[int, NewPost]]) -> None:
        self._held_by(job.id, job.runner)
        lines = self._import_posts[job.id]
        created: list[Delivery] = []
        for line, new in posts:
            if line in lines or new.post.id in self._posts:
                raise InvalidInput("a post of this import, or with this id, already exists")
            for target in new.deliveries:
                channel = self._channels.get(target.channel_id)
                if channel is None:
                    raise NotFound("channel", target.channel_id)
                created.append(
                    Delivery(
                        id=target.id,
                        post_id=new.post.id,
                        channel_id=target.channel_id,
                        platform=channel.platform,
                        due_at=target.due_at,
                        next_attempt_at=None,  # held: nothing claims it until released
                        updated_at=utcnow(),
                    )
                )
        for line, new in posts:
            self._posts[new.post.id] = new.post
            lines[line] = new.post.id
        for delivery in created:
            self._deliveries[delivery.id] = delivery
        self._save(job)

    def _next_lines(self, import_id: str, after_line: int, limit: int) -> list[tuple[int, str]]:
        lines = self._import_posts.get(import_id, {})
        return sorted((line, p) for line, p in lines.items() if line > after_line)[:limit]

    async def release_import(
        self, import_id: str, runner: str, *, after_line: int, limit: int
    ) -> int | None:
        self._held_by(import_id, runner)
        batch = self._next_lines(import_id, after_line, limit)
        posts = {post_id for _, post_id in batch}
        now = utcnow()
        for d in list(self._deliveries.values()):
            if d.post_id in posts and d.held:
                self._deliveries[d.id] = replace(d, next_attempt_at=d.due_at, updated_at=now)
        return batch[-1][0] if batch else None

    async def discard_import(
        self, import_id: str, runner: str, *, after_line: int, limit: int
    ) -> int | None:
        self._held_by(import_id, runner)
        batch = self._next_lines(import_id, after_line, limit)
        posts = {post_id for _, post_id in batch}
        for d in list(self._deliveries.values()):
            if d.post_id in posts:
                del self._deliveries[d.id]
                self._attempts.pop(d.id, None)
        lines = self._import_posts[import_id]
        for line, post_id in batch:
            del lines[line]
            del self._posts[post_id]
        return batch[-1][0] if batch else None

    async def list_import_posts(
        self, import_id: str, *, after_line: int = 0, limit: int = 50
    ) -> list[tuple[int, Post]]:
        lines = self._next_lines(import_id, after_line, limit)
        return [(line, self._posts[post_id]) for line, post_id in lines]
