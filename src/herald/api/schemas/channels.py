"""Channels and their weekly posting schedules."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr, field_validator

from herald.api.schemas.common import (
    Name,
    Public,
    Timezone,
    not_blank,
    request_config,
    storable,
)
from herald.constants import REGION_PATTERN
from herald.domain import Channel, ChannelStatus, Platform, PostingSlot
from herald.service.channels import ChannelChanges, ChannelDraft

__all__ = [
    "ChannelCreate",
    "ChannelCredentials",
    "ChannelPublic",
    "ChannelUpdate",
    "SchedulePublic",
    "ScheduleUpdate",
    "Slot",
]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _storable_secret(value: SecretStr) -> SecretStr:
    storable(value.get_secret_value())
    return value


Secret = Annotated[
    SecretStr, Field(min_length=1, max_length=8192), AfterValidator(_storable_secret)
]


class ChannelCredentials(BaseModel):
    """The platform tokens Herald publishes with: encrypted at rest, never returned."""

    model_config = request_config()

    access_token: Secret
    refresh_token: Secret | None = Field(None, description="YouTube: required")
    client_id: Secret | None = Field(None, description="YouTube: the OAuth client id")
    client_secret: Secret | None = Field(None, description="YouTube: the OAuth client secret")

    def plain(self) -> dict[str, str]:
        return {
            name: value.get_secret_value()
            for name, value in (
                ("access_token", self.access_token),
                ("refresh_token", self.refresh_token),
                ("client_id", self.client_id),
                ("client_secret", self.client_secret),
            )
            if value is not None
        }


class ChannelCreate(BaseModel):
    model_config = request_config(
        {
            "platform": "facebook",
            "external_id": "104857600012345",
            "name": "Acme Bakery",
            "timezone": "Europe/Paris",
            "credentials": {"access_token": "EAAB..."},
        }
    )

    platform: Platform
    external_id: Annotated[
        str,
        Field(min_length=1, max_length=200),
        AfterValidator(storable),
        AfterValidator(not_blank),
    ] = Field(description="The platform's id: Page id, IG user id, author URN, YouTube channel id")
    name: Name
    timezone: Timezone = Field("UTC", description="IANA zone of the posting schedule")
    credentials: ChannelCredentials
    region: str | None = Field(
        None,
        pattern=REGION_PATTERN,
        description="where its deliveries are published from: only that region's workers take "
        "them (default: the deployment's region). Set at creation only.",
    )

    def to_draft(self) -> ChannelDraft:
        return ChannelDraft(
            self.platform,
            self.external_id,
            self.name,
            self.timezone,
            self.credentials.plain(),
            region=self.region,
        )


class ChannelUpdate(BaseModel):
    """Fields left out stay as they are. New ``credentials`` re-authorise the channel."""

    model_config = request_config(
        {"name": "Acme Bakery (Paris)", "timezone": "Europe/Paris"},
        {"credentials": {"access_token": "EAAB...new"}},
        {"status": "disabled"},
    )

    name: Name | None = None
    timezone: Timezone | None = None
    credentials: ChannelCredentials | None = None
    status: Literal["active", "disabled"] | None = Field(
        None, description="disabled: nothing is published until it is active again"
    )

    def to_changes(self) -> ChannelChanges:
        return ChannelChanges(
            name=self.name,
            timezone=self.timezone,
            credentials=None if self.credentials is None else self.credentials.plain(),
            status=None if self.status is None else ChannelStatus(self.status),
        )


class ChannelPublic(Public):
    id: str
    platform: Platform
    external_id: str
    name: str
    timezone: str
    status: ChannelStatus = Field(description="active, needs_reauth or disabled")
    region: str | None = Field(description="where it publishes from (null: the deployment's)")


class Slot(BaseModel):
    """A weekly posting time, wall time in the channel's zone."""

    model_config = request_config()

    day: Weekday
    time: dt.time = Field(description="HH:MM, local wall time")

    @field_validator("time")
    @classmethod
    def _whole_minute(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("a slot is a wall time in the channel's zone: give no offset")
        if value.second or value.microsecond:
            raise ValueError("slots are whole minutes (HH:MM)")
        return value

    def to_slot(self) -> PostingSlot:
        return PostingSlot(WEEKDAYS.index(self.day), self.time)

    @classmethod
    def of(cls, slot: PostingSlot) -> Slot:
        return cls(day=WEEKDAYS[slot.weekday], time=slot.time)


class ScheduleUpdate(BaseModel):
    """The channel's whole weekly schedule (replaces the previous one; [] clears it)."""

    model_config = request_config(
        {
            "slots": [
                {"day": "monday", "time": "09:00"},
                {"day": "wednesday", "time": "12:30"},
                {"day": "friday", "time": "17:00"},
            ]
        }
    )

    slots: list[Slot] = Field(max_length=700)

    def to_slots(self) -> list[PostingSlot]:
        return [s.to_slot() for s in self.slots]


class SchedulePublic(BaseModel):
    channel_id: str
    timezone: str
    slots: list[Slot]

    @classmethod
    def of(cls, channel: Channel, slots: list[PostingSlot]) -> SchedulePublic:
        return cls(
            channel_id=channel.id, timezone=channel.timezone, slots=[Slot.of(s) for s in slots]
        )
