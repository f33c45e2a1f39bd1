"""Row <-> object mapping for the SQLite store. Instants are integer microseconds, UTC."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from herald.domain import (
    ApiKey,
    Attempt,
    Channel,
    ChannelStatus,
    Content,
    ContentOverride,
    Delivery,
    Platform,
    Post,
    PostingSlot,
    SentRecord,
    Webhook,
    WebhookEvent,
    Workspace,
)
from herald.states import DeliveryState

__all__ = [
    "CHANNEL_COLUMNS",
    "DELIVERY_COLUMNS",
    "POST_COLUMNS",
    "api_key",
    "at",
    "attempt",
    "channel",
    "content_for",
    "delivery",
    "dt",
    "event",
    "placeholders",
    "post",
    "post_row",
    "sent",
    "slot",
    "us",
    "webhook",
    "workspace",
]

DELIVERY_COLUMNS = (
    "id, post_id, channel_id, platform, due_at, state, next_attempt_at, attempts, retries, checks, "
    "check_first, check_since, external_id, reconciled, last_error, published_at, updated_at"
)
CHANNEL_COLUMNS = (
    "id, platform, external_id, name, timezone, credentials_ref, status, workspace_id, deleted_at"
)
POST_COLUMNS = "id, content, overrides, created_at, workspace_id"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def us(instant: datetime | None) -> int | None:
    return None if instant is None else (instant - _EPOCH) // _US


def dt(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def at(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def placeholders(count: int) -> str:
    return ",".join("?" * count)


def delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        post_id=row[1],
        channel_id=row[2],
        platform=Platform(row[3]),
        due_at=at(row[4]),
        state=DeliveryState(row[5]),
        next_attempt_at=dt(row[6]),
        attempts=row[7],
        retries=row[8],
        checks=row[9],
        check_first=bool(row[10]),
        check_since=dt(row[11]),
        external_id=row[12],
        reconciled=bool(row[13]),
        last_error=row[14],
        published_at=dt(row[15]),
        updated_at=dt(row[16]),
    )


def channel(row: Sequence[Any]) -> Channel:
    return Channel(
        id=row[0],
        platform=Platform(row[1]),
        external_id=row[2],
        name=row[3],
        timezone=row[4],
        credentials_ref=row[5],
        status=ChannelStatus(row[6]),
        workspace_id=row[7],
        deleted_at=dt(row[8]),
    )


def post(row: Sequence[Any]) -> Post:
    overrides = {
        Platform(name): ContentOverride.from_dict(raw) for name, raw in json.loads(row[2]).items()
    }
    return Post(
        id=row[0],
        content=Content.from_dict(json.loads(row[1])),
        overrides=overrides,
        created_at=at(row[3]),
        workspace_id=row[4],
    )


def content_for(platform: Platform, content: str, overrides: str) -> Content:
    """The content a delivery on ``platform`` publishes, from a post's two JSON columns."""
    base = Content.from_dict(json.loads(content))
    override = json.loads(overrides).get(platform.value)
    return base if override is None else ContentOverride.from_dict(override).apply(base)


def sent(found: Iterable[Sequence[Any]]) -> list[SentRecord]:
    """Rows of ``sent_since``; each post's content is read once per platform."""
    contents: dict[tuple[str, str], Content] = {}
    records = []
    for row in found:
        platform = Platform(row[2])
        content = contents.get((row[6], row[2]))
        if content is None:
            content = contents[(row[6], row[2])] = content_for(platform, row[7], row[8])
        records.append(SentRecord(row[0], row[1], platform, row[3], at(row[4]), row[5], content))
    return records


def post_row(p: Post) -> tuple[Any, ...]:
    return (
        p.id,
        json.dumps(p.content.to_dict(), separators=(",", ":")),
        json.dumps({k.value: o.to_dict() for k, o in p.overrides.items()}, separators=(",", ":")),
        us(p.created_at),
        p.workspace_id,
    )


def attempt(row: Sequence[Any]) -> Attempt:
    return Attempt(row[0], row[1], at(row[2]), at(row[3]), row[4], row[5])


def workspace(row: Sequence[Any]) -> Workspace:
    return Workspace(row[0], row[1], at(row[2]))


def api_key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], row[3], at(row[4]), dt(row[5]))


def slot(row: Sequence[Any]) -> PostingSlot:
    return PostingSlot(row[0], time(row[1] // 60, row[1] % 60))


def webhook(row: Sequence[Any]) -> Webhook:
    return Webhook(row[0], row[1], row[2], tuple(json.loads(row[3])), at(row[4]))


def event(row: Sequence[Any]) -> WebhookEvent:
    return WebhookEvent(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], at(row[6]))
