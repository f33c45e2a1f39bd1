"""Webhook subscriptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from herald.api.schemas.common import Public, Text, request_config
from herald.domain import Webhook

__all__ = ["WebhookCreate", "WebhookCreated", "WebhookPublic"]

Event = Literal[
    "delivery.published", "delivery.failed", "delivery.unconfirmed", "channel.needs_reauth"
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
    events: list[Event] = Field(min_length=1, max_length=4)


class WebhookPublic(Public):
    id: str
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(
        description="Signs every request (Herald-Signature): shown this once, never again"
    )

    @classmethod
    def issued(cls, webhook: Webhook, secret: str) -> WebhookCreated:
        return cls.model_validate({**WebhookPublic.fields_of(webhook), "secret": secret})
