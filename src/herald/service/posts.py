"""Creating and reading posts: validated per platform and scheduled before anything is stored.

A :class:`PostDraft` is checked completely before the store is touched: every target channel
belongs to the caller's workspace, the content (with each platform's overrides) passes that
platform's own rules (a :data:`~herald.types.Validator` per platform: the connectors' rules,
passed in), and each target gets a due time (:mod:`herald.service.scheduling`). Every problem
is reported at once, each with its field; a file import reports them per line
(:mod:`herald.service.import_work`). Then one ``store.add_posts`` call stores everything, or
nothing, and the engine (when it runs in this process) is told.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from herald.domain import (
    Attempt,
    Channel,
    Content,
    ContentOverride,
    Delivery,
    NewDelivery,
    NewPost,
    Platform,
    Post,
    new_id,
)
from herald.errors import (
    ContentInvalid,
    FieldProblem,
    InputErrors,
    InvalidInput,
    NotFound,
    ScheduleError,
)
from herald.service.base import Service
from herald.service.ownership import owned_channel, owned_post
from herald.service.scheduling import Scheduler, SlotBook, When
from herald.states import DeliveryState
from herald.types import Validator

__all__ = [
    "MAX_MEDIA",
    "MAX_TARGETS",
    "MAX_TEXT_CHARS",
    "MAX_TITLE_CHARS",
    "MAX_URL_CHARS",
    "Cursor",
    "PostDraft",
    "PostFilter",
    "PostService",
    "PostView",
    "check_url",
]

#: Shape limits every post obeys whatever its platforms (each platform's own, tighter rules
#: are applied by its validator): they bound what one request can make the API store.
MAX_TARGETS = 50
MAX_TEXT_CHARS = 63_206  # Facebook's limit, the largest of the four platforms
MAX_TITLE_CHARS = 1_000
MAX_MEDIA = 20
MAX_URL_CHARS = 2_048


@dataclass(frozen=True, slots=True)
class PostDraft:
    channel_ids: tuple[str, ...]
    content: Content
    overrides: Mapping[Platform, ContentOverride]
    when: When


@dataclass(frozen=True, slots=True)
class PostView:
    post: Post
    deliveries: list[Delivery]
    attempts: Mapping[str, list[Attempt]] | None = None  # by delivery id, when asked for


@dataclass(frozen=True, slots=True)
class PostFilter:
    state: DeliveryState | None = None
    channel_id: str | None = None
    due_from: datetime | None = None
    due_to: datetime | None = None


_BAD_CURSOR = "the cursor is not one this API handed out"


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in a workspace's posts, ordered by (created_at, id); opaque to callers."""

    created_at: datetime
    post_id: str

    def encode(self) -> str:
        micros = int(self.created_at.timestamp() * 1_000_000)
        raw = f"{micros}:{self.post_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            micros, _, post_id = raw.partition(":")
            at = datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError):
            raise InvalidInput(_BAD_CURSOR, field="cursor") from None
        if not post_id:
            raise InvalidInput(_BAD_CURSOR, field="cursor")
        return cls(at, post_id)


@dataclass
class _Checked:
    """The outcome of checking one draft: a post ready to store, or its problems."""

    new: NewPost | None = None
    problems: list[FieldProblem] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class PostService(Service):
    scheduler: Scheduler
    validators: Mapping[Platform, Validator]

    # -- creating -------------------------------------------------------------------------
    async def create(self, workspace_id: str, draft: PostDraft) -> PostView:
        """Check and store one post; :class:`NotFound` for a target outside the workspace,
        :class:`InputErrors` listing every other problem."""
        channels = [await owned_channel(self.store, workspace_id, c) for c in draft.channel_ids]
        async with self.scheduler.holding([draft.when], draft.channel_ids):
            checked = await self._check(workspace_id, draft, channels, self.scheduler.book())
            if checked.new is None:
                raise InputErrors(_summary(checked.problems), checked.problems)
            deliveries = await self.store.add_posts([checked.new])
        self.wake(d.due_at for d in deliveries)
        return PostView(checked.new.post, deliveries)

    async def check_row(
        self, workspace_id: str, draft: PostDraft, known: Mapping[str, Channel], book: SlotBook
    ) -> NewPost | list[FieldProblem]:
        """Check one row of a file import as :meth:`create` checks a post: the post ready to
        store, or every problem found. ``known``: the workspace's live channels by id (read
        once per file); ``book``: the posting slots the file's rows took so far."""
        missing = [c for c in draft.channel_ids if c not in known]
        if missing:
            return [FieldProblem("channel_ids", str(NotFound("channel", c))) for c in missing]
        channels = [known[c] for c in draft.channel_ids]
        checked = await self._check(workspace_id, draft, channels, book)
        return checked.problems if checked.new is None else checked.new

    def imported_post(
        self, workspace_id: str, draft: PostDraft, due: Sequence[datetime]
    ) -> NewPost:
        """The post of a draft that passed its checks (:meth:`create`'s, or a row's that
        :meth:`check_row` accepted), with the due times found for it (one per channel of
        ``draft``, in order) and ids of its own."""
        post = Post(
            id=new_id("post"),
            content=draft.content,
            overrides=dict(draft.overrides),
            created_at=self.clock(),
            workspace_id=workspace_id,
        )
        targets = zip(draft.channel_ids, due, strict=True)
        return NewPost(post, tuple(NewDelivery(new_id("dlv"), c, at) for c, at in targets))

    async def _check(
        self, workspace_id: str, draft: PostDraft, channels: Sequence[Channel], book: SlotBook
    ) -> _Checked:
        problems = _target_problems(draft) + self._content_problems(draft, channels)
        try:
            due = await self.scheduler.due_times(draft.when, channels, book)
        except ScheduleError as exc:
            problems.append(FieldProblem(exc.field, exc.message))
        if problems:
            return _Checked(problems=problems)
        # ``channels`` are the draft's, in its order: the post is made as an import's row is.
        return _Checked(new=self.imported_post(workspace_id, draft, due))

    def _content_problems(
        self, draft: PostDraft, channels: Sequence[Channel]
    ) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        for platform in sorted({c.platform for c in channels}):
            override = draft.overrides.get(platform)
            content = draft.content if override is None else override.apply(draft.content)
            try:
                self.validators[platform](content)
            except ContentInvalid as exc:
                name = _content_field(platform, exc.field, override)
                problems.append(FieldProblem(name, f"{platform.value}: {exc.message}"))
        return problems

    # -- reading --------------------------------------------------------------------------
    async def get(self, workspace_id: str, post_id: str) -> PostView:
        """The post with every delivery and each delivery's attempts."""
        post = await owned_post(self.store, workspace_id, post_id)
        deliveries = (await self.store.deliveries_of([post.id]))[post.id]
        attempts = {d.id: await self.store.list_attempts(d.id) for d in deliveries}
        return PostView(post, deliveries, attempts)

    async def page(
        self, workspace_id: str, where: PostFilter, *, after: Cursor | None, limit: int
    ) -> tuple[list[PostView], Cursor | None]:
        """One page of posts (oldest first) and the cursor of the next page, if any; not
        those of a CSV import that has not made them due yet (all or nothing: they show
        once the whole file is stored, at ``GET /v1/imports/{id}/posts`` meanwhile)."""

        async def read() -> tuple[list[Post], dict[str, list[Delivery]]]:
            posts = await self.store.list_posts(
                workspace_id,
                state=where.state,
                channel_id=where.channel_id,
                due_from=where.due_from,
                due_to=where.due_to,
                after=None if after is None else (after.created_at, after.post_id),
                limit=limit + 1,
                with_held=False,
            )
            page = posts[:limit]
            return posts, await self.store.deliveries_of([p.id for p in page]) if page else {}

        # A listing, an export, a calendar week: they may lag (a read replica may serve them),
        # but never behind the caller's own writes (Store.lagging_reads).
        posts, grouped = await self.store.lagging_reads(read)
        more = len(posts) > limit
        posts = posts[:limit]
        views = [PostView(p, grouped.get(p.id, [])) for p in posts]
        following = Cursor(posts[-1].created_at, posts[-1].id) if more else None
        return views, following


def check_url(value: str, field_name: str) -> str:
    """An absolute http(s) URL, as platforms fetch media and links from the public web."""
    try:
        parts = urlsplit(value)
    except ValueError:
        raise InvalidInput("not a valid URL", field=field_name) from None
    if len(value) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"give an absolute http(s) URL of at most {MAX_URL_CHARS} characters",
            field=field_name,
        )
    return value


def _summary(problems: Sequence[FieldProblem]) -> str:
    if len(problems) == 1:
        return problems[0].message
    return f"{len(problems)} problems; nothing was stored. First: {problems[0].message}"


def _target_problems(draft: PostDraft) -> list[FieldProblem]:
    if not draft.channel_ids:
        return [FieldProblem("channel_ids", "give at least one target channel")]
    seen: set[str] = set()
    problems: list[FieldProblem] = []
    for channel_id in draft.channel_ids:
        if channel_id in seen:
            problems.append(FieldProblem("channel_ids", f"channel {channel_id!r} is listed twice"))
        seen.add(channel_id)
    return problems


def _content_field(platform: Platform, name: str | None, override: ContentOverride | None) -> str:
    """``content.<field>``, or ``overrides.<platform>.<field>`` when the override set it."""
    name = name or "text"
    if override is not None and getattr(override, name, None) is not None:
        return f"overrides.{platform.value}.{name}"
    return f"content.{name}"
