"""Webhook subscriptions, and the events recorded for each."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from herald.api.schemas.common import Public, Text, request_config
from herald.domain import Webhook, WebhookEventRecord, WebhookEventState

__all__ = [
    "WebhookCreate",
    "WebhookCreated",
    "WebhookEventPage",
    "WebhookEventPublic",
    "WebhookPublic",
]

Event = Literal[
    "delivery.published",
    "delivery.failed",
    "delivery.unconfirmed",
    "channel.needs_reauth",
    "webhook.disabled",
    "platform.version_retiring",
]


class WebhookCreate(BaseModel):
    model_config = request_config(
        {
            "url": "https://hooks.acme.test/herald",
            "events": ["delivery.published", "delivery.failed"],
        }
    )

    url: Annotated[Text, Field(min_length=1, max_length=2048)] = Field(
        description="Where events are POSTed (http or https)"
    )
    events: list[Event] = Field(min_length=1, max_length=5)


class WebhookPublic(Public):
    id: str
    url: str
    events: list[str]
    created_at: datetime
    status: Literal["enabled", "disabled"] = Field(
        description="disabled: every attempt failed for too long; events are kept, not sent, "
        "until POST /v1/webhooks/{id}/enable"
    )
    disabled_at: datetime | None
    disabled_reason: str | None
    failing_since: datetime | None = Field(
        description="every attempt has failed since then (null: the last one went through)"
    )

    @classmethod
    def fields_of(cls, source: Any) -> dict[str, object]:
        webhook: Webhook = source
        return {
            "id": webhook.id,
            "url": webhook.url,
            "events": list(webhook.events),
            "created_at": webhook.created_at,
            "status": "enabled" if webhook.enabled else "disabled",
            "disabled_at": webhook.disabled_at,
            "disabled_reason": webhook.disabled_reason,
            "failing_since": webhook.failing_since,
        }


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="Signs every request (Herald-Signature): shown this once, never again"
    )

    @classmethod
    def issued(cls, webhook: Webhook, secret: str) -> WebhookCreated:
        return cls.model_validate({**WebhookPublic.fields_of(webhook), "secret": secret})


class WebhookEventPublic(Public):
    id: str
    event: str
    status: WebhookEventState = Field(
        description="pending (waiting for an attempt, or for its webhook to be enabled), "
        "sending, sent, or failed (every attempt used: replay it)"
    )
    attempts: int = Field(description="attempts made (a replay starts again from 0)")
    last_error: str | None = Field(description="why the last attempt failed")
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="pending: when it is due")
    finished_at: datetime | None = Field(description="when it was sent or given up")
    payload: dict[str, Any] = Field(description="the body POSTed, without its id")

    @classmethod
    def fields_of(cls, source: Any) -> dict[str, object]:
        record: WebhookEventRecord = source
        return {
            "id": record.event.id,
            "event": record.event.event,
            "status": record.state,
            "attempts": record.event.attempts,
            "last_error": record.last_error,
            "created_at": record.event.created_at,
            "last_attempt_at": record.last_attempt_at,
            "next_attempt_at": record.next_attempt_at,
            "finished_at": record.finished_at,
            "payload": dict(record.event.payload),
        }


class WebhookEventPage(BaseModel):
    items: list[WebhookEventPublic]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: done")
