"""Row <-> object mapping for the PostgreSQL store.

Rows are driver records read by position; instants arrive as aware datetimes (timestamptz),
JSON as text (jsonb, decoded here).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import time
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
    "attempt",
    "channel",
    "content_for",
    "delivery",
    "dumps",
    "event",
    "overrides_json",
    "post",
    "prefixed",
    "sent",
    "slot",
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
#: How many columns each of the lists above has: where the next object starts in a joined row.
DELIVERY_WIDTH = 17
CHANNEL_WIDTH = 9


def prefixed(columns: str, alias: str) -> str:
    """``a, b`` -> ``x.a, x.b``: the same columns read through a table alias."""
    return ", ".join(f"{alias}.{name.strip()}" for name in columns.split(","))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def overrides_json(p: Post) -> str:
    return dumps({k.value: o.to_dict() for k, o in p.overrides.items()})


def delivery(row: Sequence[Any], at: int = 0) -> Delivery:
    return Delivery(
        id=row[at],
        post_id=row[at + 1],
        channel_id=row[at + 2],
        platform=Platform(row[at + 3]),
        due_at=row[at + 4],
        state=DeliveryState(row[at + 5]),
        next_attempt_at=row[at + 6],
        attempts=row[at + 7],
        retries=row[at + 8],
        checks=row[at + 9],
        check_first=row[at + 10],
        check_since=row[at + 11],
        external_id=row[at + 12],
        reconciled=row[at + 13],
        last_error=row[at + 14],
        published_at=row[at + 15],
        updated_at=row[at + 16],
    )


def channel(row: Sequence[Any], at: int = 0) -> Channel:
    return Channel(
        id=row[at],
        platform=Platform(row[at + 1]),
        external_id=row[at + 2],
        name=row[at + 3],
        timezone=row[at + 4],
        credentials_ref=row[at + 5],
        status=ChannelStatus(row[at + 6]),
        workspace_id=row[at + 7],
        deleted_at=row[at + 8],
    )


def _overrides(raw: str) -> dict[Platform, ContentOverride]:
    return {Platform(name): ContentOverride.from_dict(o) for name, o in json.loads(raw).items()}


def post(row: Sequence[Any]) -> Post:
    return Post(
        id=row[0],
        content=Content.from_dict(json.loads(row[1])),
        overrides=_overrides(row[2]),
        created_at=row[3],
        workspace_id=row[4],
    )


def content_for(platform: Platform, content: str, overrides: str) -> Content:
    """The content a delivery on ``platform`` publishes, from a post's two JSON columns."""
    base = Content.from_dict(json.loads(content))
    override = _overrides(overrides).get(platform)
    return base if override is None else override.apply(base)


def sent(found: Iterable[Sequence[Any]]) -> list[SentRecord]:
    """Rows of ``sent_since``; each post's content is read once per platform."""
    contents: dict[tuple[str, str], Content] = {}
    records = []
    for row in found:
        platform = Platform(row[2])
        content = contents.get((row[6], row[2]))
        if content is None:
            content = contents[(row[6], row[2])] = content_for(platform, row[7], row[8])
        records.append(SentRecord(row[0], row[1], platform, row[3], row[4], row[5], content))
    return records


def attempt(row: Sequence[Any]) -> Attempt:
    return Attempt(row[0], row[1], row[2], row[3], row[4], row[5])


def workspace(row: Sequence[Any]) -> Workspace:
    return Workspace(row[0], row[1], row[2])


def api_key(row: Sequence[Any]) -> ApiKey:
    return ApiKey(row[0], row[1], row[2], row[3], row[4], row[5])


def slot(row: Sequence[Any]) -> PostingSlot:
    return PostingSlot(row[0], time(row[1] // 60, row[1] % 60))


def webhook(row: Sequence[Any]) -> Webhook:
    return Webhook(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4])


def event(row: Sequence[Any]) -> WebhookEvent:
    payload: Mapping[str, Any] = json.loads(row[4])
    return WebhookEvent(row[0], row[1], row[2], row[3], payload, row[5], row[6])
