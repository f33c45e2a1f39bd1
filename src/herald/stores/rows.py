"""Rows to domain objects for both SQL stores: read by column name, each object built once.

Rows are read by name (``row["state"]``): the SQLite store's rows are :class:`sqlite3.Row`
(its connections' row factory), the PostgreSQL store's are asyncpg ``Record``\\ s. The column
lists are declared here and filled into the named SQL by :mod:`herald.stores.queries`, so a
query selects what its decoder reads. A joined table's columns are named
``"<table>.<column>"`` (``"channel.status"``, ``"post.content"``): no name of a joined row is
ambiguous.

Only instants differ by dialect, so a :class:`Decoder` is made with the dialect's way of
reading one: SQLite keeps integer microseconds since the Unix epoch (UTC), PostgreSQL
``timestamptz`` (aware datetimes already). JSON arrives as text from both (``TEXT``,
``jsonb``), flags as 0/1 or booleans (both read through ``bool``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol, cast

from herald.domain import (
    ApiKey,
    Attempt,
    Channel,
    ChannelStatus,
    Content,
    ContentOverride,
    Delivery,
    ImportJob,
    ImportState,
    Platform,
    Post,
    PostingSlot,
    SentRecord,
    Webhook,
    WebhookEvent,
    WebhookEventRecord,
    WebhookEventState,
    WebhookHealth,
    Workspace,
    utcnow,
)
from herald.errors import FieldProblem
from herald.states import DeliveryState
from herald.stores.contract import KeyRecord, KeyState
from herald.types import StoredResponse

__all__ = [
    "CHANNEL_COLUMNS",
    "DELIVERY_COLUMNS",
    "IMPORT_COLUMNS",
    "POSTGRES",
    "POST_COLUMNS",
    "SQLITE",
    "Decoder",
    "Row",
    "content_of",
    "dumps",
    "from_micros",
    "headers_json",
    "import_params",
    "micros",
    "post_json",
    "problems_json",
    "usage_json",
]

DELIVERY_COLUMNS = (
    "id",
    "post_id",
    "channel_id",
    "platform",
    "due_at",
    "state",
    "next_attempt_at",
    "attempts",
    "retries",
    "checks",
    "check_first",
    "check_since",
    "external_id",
    "reconciled",
    "last_error",
    "published_at",
    "updated_at",
)
CHANNEL_COLUMNS = (
    "id",
    "platform",
    "external_id",
    "name",
    "timezone",
    "credentials_ref",
    "status",
    "workspace_id",
    "deleted_at",
    "region",
)
POST_COLUMNS = ("id", "content", "overrides", "created_at", "workspace_id")
IMPORT_COLUMNS = (
    "id",
    "workspace_id",
    "state",
    "rows_total",
    "rows_validated",
    "posts_written",
    "deliveries",
    "committed",
    "detail",
    "errors",
    "runner",
    "lease_until",
    "created_at",
    "updated_at",
    "finished_at",
)


class Row(Protocol):
    """A result row read by column name (``sqlite3.Row``, asyncpg ``Record``)."""

    def __getitem__(self, name: str, /) -> Any: ...


# -- instants: the dialects' one difference --------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def micros(instant: datetime | None) -> int | None:
    """An instant as SQLite stores it: integer microseconds since the Unix epoch."""
    return None if instant is None else (instant - _EPOCH) // _US


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _maybe_from_micros(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _as_is(value: Any) -> Any:
    return value


# -- JSON, written and read alike by both -----------------------------------------------------
def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def usage_json(usage: Mapping[str, int]) -> str | None:
    """An attempt's ``page_usage`` column: NULL for the many attempts without one."""
    return dumps(dict(usage)) if usage else None


def _usage(raw: str | None) -> dict[str, int]:
    return json.loads(raw) if raw else {}


def headers_json(response: StoredResponse) -> str:
    """A stored answer's ``headers`` column: its (name, value) pairs in order."""
    return dumps([list(pair) for pair in response.headers])


def post_json(post: Post) -> tuple[str, str]:
    """A post's two JSON columns: its content and its per-platform overrides."""
    overrides = {k.value: o.to_dict() for k, o in post.overrides.items()}
    return dumps(post.content.to_dict()), dumps(overrides)


def problems_json(problems: Iterable[FieldProblem]) -> str:
    """An import job's ``errors`` column: ``[{"line", "field", "message"}]``."""
    return dumps([{"line": p.line, "field": p.field, "message": p.message} for p in problems])


def import_params(
    job: ImportJob, instant: Callable[[datetime | None], Any], *, saved: bool = False
) -> dict[str, Any]:
    """The named parameters of ``insert_import`` for ``job`` (``saved``: of ``save_import``,
    which writes neither its workspace, its creation time nor its lease), instants as
    ``instant`` gives them to the dialect. ``updated_at`` is now."""
    values = {
        "id": job.id,
        "state": job.state.value,
        "rows_total": job.rows_total,
        "rows_validated": job.rows_validated,
        "posts_written": job.posts_written,
        "deliveries": job.deliveries,
        "committed": job.committed,
        "detail": job.detail,
        "errors": problems_json(job.errors),
        "runner": job.runner,
        "updated_at": instant(utcnow()),
        "finished_at": instant(job.finished_at),
    }
    if not saved:
        values |= {
            "workspace_id": job.workspace_id,
            "created_at": instant(job.created_at),
            "lease_until": instant(job.lease_until),
        }
    return values


def content_of(row: Row, platform: Platform, prefix: str = "") -> Content:
    """What a delivery on ``platform`` publishes, from a post's two JSON columns."""
    base = Content.from_dict(json.loads(row[f"{prefix}content"]))
    override = json.loads(row[f"{prefix}overrides"]).get(platform.value)
    return base if override is None else ContentOverride.from_dict(override).apply(base)


class Decoder:
    """Builds domain objects from one dialect's rows, each kind of object in one method."""

    __slots__ = ("instant", "maybe_instant")

    def __init__(
        self,
        instant: Callable[[Any], datetime],
        maybe_instant: Callable[[Any], datetime | None],
    ) -> None:
        self.instant = instant
        self.maybe_instant = maybe_instant

    def delivery(self, row: Row) -> Delivery:
        instant, maybe = self.instant, self.maybe_instant
        return Delivery(
            id=row["id"],
            post_id=row["post_id"],
            channel_id=row["channel_id"],
            platform=Platform(row["platform"]),
            due_at=instant(row["due_at"]),
            state=DeliveryState(row["state"]),
            next_attempt_at=maybe(row["next_attempt_at"]),
            attempts=row["attempts"],
            retries=row["retries"],
            checks=row["checks"],
            check_first=bool(row["check_first"]),
            check_since=maybe(row["check_since"]),
            external_id=row["external_id"],
            reconciled=bool(row["reconciled"]),
            last_error=row["last_error"],
            published_at=maybe(row["published_at"]),
            updated_at=maybe(row["updated_at"]),
        )

    def channel(self, row: Row, prefix: str = "") -> Channel:
        return Channel(
            id=row[f"{prefix}id"],
            platform=Platform(row[f"{prefix}platform"]),
            external_id=row[f"{prefix}external_id"],
            name=row[f"{prefix}name"],
            timezone=row[f"{prefix}timezone"],
            credentials_ref=row[f"{prefix}credentials_ref"],
            status=ChannelStatus(row[f"{prefix}status"]),
            workspace_id=row[f"{prefix}workspace_id"],
            deleted_at=self.maybe_instant(row[f"{prefix}deleted_at"]),
            region=row[f"{prefix}region"],
        )

    def post(self, row: Row) -> Post:
        overrides = json.loads(row["overrides"]).items()
        return Post(
            id=row["id"],
            content=Content.from_dict(json.loads(row["content"])),
            overrides={Platform(k): ContentOverride.from_dict(o) for k, o in overrides},
            created_at=self.instant(row["created_at"]),
            workspace_id=row["workspace_id"],
        )

    def sent(self, found: Iterable[Row]) -> list[SentRecord]:
        """Rows of ``sent_since``; each post's content is read once per platform."""
        contents: dict[tuple[str, Platform], Content] = {}
        records = []
        for row in found:
            platform = Platform(row["platform"])
            key = (row["post_id"], platform)
            content = contents.get(key)
            if content is None:
                content = contents[key] = content_of(row, platform, "post.")
            records.append(
                SentRecord(
                    delivery_id=row["delivery_id"],
                    number=row["number"],
                    platform=platform,
                    channel_external_id=row["channel.external_id"],
                    started_at=self.instant(row["started_at"]),
                    outcome=row["outcome"],
                    content=content,
                    page_usage=_usage(row["page_usage"]),
                )
            )
        return records

    def attempt(self, row: Row) -> Attempt:
        return Attempt(
            delivery_id=row["delivery_id"],
            number=row["number"],
            started_at=self.instant(row["started_at"]),
            finished_at=self.instant(row["finished_at"]),
            outcome=row["outcome"],
            error=row["error"],
            page_usage=_usage(row["page_usage"]),
        )

    def import_job(self, row: Row) -> ImportJob:
        instant, maybe = self.instant, self.maybe_instant
        return ImportJob(
            id=row["id"],
            workspace_id=row["workspace_id"],
            state=ImportState(row["state"]),
            rows_total=row["rows_total"],
            rows_validated=row["rows_validated"],
            posts_written=row["posts_written"],
            deliveries=row["deliveries"],
            committed=bool(row["committed"]),
            detail=row["detail"],
            errors=tuple(
                FieldProblem(p["field"], p["message"], p["line"]) for p in json.loads(row["errors"])
            ),
            runner=row["runner"],
            lease_until=maybe(row["lease_until"]),
            created_at=instant(row["created_at"]),
            updated_at=instant(row["updated_at"]),
            finished_at=maybe(row["finished_at"]),
        )

    def workspace(self, row: Row) -> Workspace:
        return Workspace(row["id"], row["name"], self.instant(row["created_at"]))

    def api_key(self, row: Row) -> ApiKey:
        created, revoked = self.instant(row["created_at"]), self.maybe_instant(row["revoked_at"])
        return ApiKey(row["id"], row["workspace_id"], row["prefix"], row["name"], created, revoked)

    def slot(self, row: Row) -> PostingSlot:
        minute: int = row["minute"]
        return PostingSlot(row["weekday"], time(minute // 60, minute % 60))

    def webhook(self, row: Row) -> Webhook:
        return Webhook(
            id=row["id"],
            workspace_id=row["workspace_id"],
            url=row["url"],
            events=tuple(json.loads(row["events"])),
            created_at=self.instant(row["created_at"]),
            disabled_at=self.maybe_instant(row["disabled_at"]),
            disabled_reason=row["disabled_reason"],
            failing_since=self.maybe_instant(row["failing_since"]),
        )

    def health(self, row: Row) -> WebhookHealth:
        return WebhookHealth(row["failure_streak"], self.maybe_instant(row["failing_since"]))

    def event_record(self, row: Row) -> WebhookEventRecord:
        return WebhookEventRecord(
            event=self.event(row),
            state=WebhookEventState(row["state"]),
            last_error=row["last_error"],
            next_attempt_at=self.maybe_instant(row["next_attempt_at"]),
            last_attempt_at=self.maybe_instant(row["last_attempt_at"]),
            finished_at=self.maybe_instant(row["finished_at"]),
        )

    def event(self, row: Row) -> WebhookEvent:
        return WebhookEvent(
            id=row["id"],
            webhook_id=row["webhook_id"],
            workspace_id=row["workspace_id"],
            event=row["event"],
            payload=json.loads(row["payload"]),
            attempts=row["attempts"],
            created_at=self.instant(row["created_at"]),
        )

    def key_record(self, row: Row) -> KeyRecord:
        response = None
        if row["state"] == "done":
            headers = tuple((str(n), str(v)) for n, v in json.loads(row["headers"]))
            response = StoredResponse(row["status"], headers, bytes(row["body"]))
        return KeyRecord(
            fingerprint=row["fingerprint"],
            token=row["token"],
            created_at=self.instant(row["created_at"]),
            locked_until=self.instant(row["locked_until"]),
            expires_at=self.instant(row["expires_at"]),
            state=_key_state(row["state"]),
            response=response,
        )


SQLITE = Decoder(from_micros, _maybe_from_micros)
POSTGRES = Decoder(_as_is, _as_is)


def _key_state(value: str) -> KeyState:
    if value not in ("in_progress", "committed", "done"):
        raise ValueError(f"not an idempotency key state: {value!r}")
    return cast(KeyState, value)
