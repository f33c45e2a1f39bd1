"""Webhook subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from herald.api.schemas.common import Text
from herald.domain import Webhook

__all__ = ["WebhookCreate", "WebhookCreated", "WebhookPublic"]

Event = Literal[
    "delivery.published", "delivery.failed", "delivery.unconfirmed", "channel.needs_reauth"
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.acme.test/herald",
                    "events": ["delivery.published", "delivery.failed"],
                }
            ]
        },
    )

    url: Annotated[Text, Field(min_length=1, max_length=2048)] = Field(
        description="Where events are POSTed (http or https)"
    )
    events: list[Event] = Field(min_length=1, max_length=4)


class WebhookPublic(BaseModel):
    id: str
    url: str
    events: list[str]
    created_at: datetime

    @classmethod
    def fields_of(cls, webhook: Webhook) -> dict[str, object]:
        return {
            "id": webhook.id,
            "url": webhook.url,
            "events": list(webhook.events),
            "created_at": webhook.created_at,
        }

    @classmethod
    def of(cls, webhook: Webhook) -> WebhookPublic:
        return cls.model_validate(cls.fields_of(webhook))


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="Signs every request (Herald-Signature): shown this once, never again"
    )

    @classmethod
    def issued(cls, webhook: Webhook, secret: str) -> WebhookCreated:
        return cls.model_validate({**cls.fields_of(webhook), "secret": secret})
