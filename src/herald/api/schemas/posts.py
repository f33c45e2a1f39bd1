"""Posts, their deliveries and attempts; the three ways to say when."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool

from herald.api.schemas.common import IsoDateTime, ObjectId, Public, Text, Timezone, request_config
from herald.domain import (
    Attempt,
    Content,
    ContentOverride,
    Delivery,
    Media,
    MediaKind,
    Platform,
)
from herald.errors import InvalidInput
from herald.service.posts import (
    MAX_MEDIA,
    MAX_TARGETS,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    PostDraft,
    PostView,
    check_url,
)
from herald.service.scheduling import AtInstant, AtLocal, NextFreeSlot, When

__all__ = [
    "AttemptPublic",
    "ContentIn",
    "DeliveryDetail",
    "DeliveryPublic",
    "MediaIn",
    "OverrideIn",
    "PostCreate",
    "PostDetail",
    "PostPage",
    "PostPublic",
    "PostReschedule",
]


def _url(value: str) -> str:
    try:
        return check_url(value, "url")
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


Url = Annotated[Text, Field(max_length=MAX_URL_CHARS), AfterValidator(_url)]
PostText = Annotated[Text, Field(max_length=MAX_TEXT_CHARS)]
Title = Annotated[Text, Field(min_length=1, max_length=MAX_TITLE_CHARS)]


class MediaIn(BaseModel):
    model_config = request_config()

    url: Url = Field(description="A public http(s) URL the platform fetches the file from")
    kind: MediaKind
    alt_text: Annotated[Text, Field(max_length=1000)] | None = None

    def to_media(self) -> Media:
        return Media(self.url, self.kind, self.alt_text)

    @classmethod
    def of(cls, media: Media) -> MediaIn:
        return cls(url=media.url, kind=media.kind, alt_text=media.alt_text)


class ContentIn(BaseModel):
    """What is published. Each target platform's rules apply (docs/api.md)."""

    model_config = request_config()

    text: PostText = ""
    link: Url | None = None
    media: list[MediaIn] = Field(default_factory=list, max_length=MAX_MEDIA)
    title: Title | None = Field(None, description="YouTube's video title")

    def to_content(self) -> Content:
        return Content(
            text=self.text,
            link=self.link,
            media=tuple(m.to_media() for m in self.media),
            title=self.title,
        )

    @classmethod
    def of(cls, content: Content) -> ContentIn:
        return cls(
            text=content.text,
            link=content.link,
            media=[MediaIn.of(m) for m in content.media],
            title=content.title,
        )


class OverrideIn(BaseModel):
    """Replaces some of the post's content on one platform; fields left out are kept."""

    model_config = request_config()

    text: PostText | None = None
    link: Url | None = None
    media: list[MediaIn] | None = Field(None, max_length=MAX_MEDIA)
    title: Title | None = None

    def to_override(self) -> ContentOverride:
        return ContentOverride(
            text=self.text,
            link=self.link,
            media=None if self.media is None else tuple(m.to_media() for m in self.media),
            title=self.title,
        )

    @classmethod
    def of(cls, override: ContentOverride) -> OverrideIn:
        media = None if override.media is None else [MediaIn.of(m) for m in override.media]
        return cls(text=override.text, link=override.link, media=media, title=override.title)


class Overrides(BaseModel):
    model_config = request_config()

    facebook: OverrideIn | None = None
    instagram: OverrideIn | None = None
    linkedin: OverrideIn | None = None
    youtube: OverrideIn | None = None

    def to_overrides(self) -> dict[Platform, ContentOverride]:
        found = {p: getattr(self, p.value) for p in Platform}
        return {p: o.to_override() for p, o in found.items() if o is not None}


class TimeFields(BaseModel):
    """When: exactly one of ``scheduled_at``, ``local_time`` or ``next_free_slot``."""

    scheduled_at: IsoDateTime | None = Field(
        None, description="A UTC instant with its offset: 2026-03-01T09:00:00Z"
    )
    local_time: IsoDateTime | None = Field(
        None, description="A wall time without offset: 2026-03-01T09:00"
    )
    timezone: Timezone | None = Field(
        None, description="IANA zone of local_time; left out: each channel's own zone"
    )
    on_gap: Literal["error", "shift"] = Field(
        "error", description="local_time inside a DST gap: refuse, or move it forward"
    )
    on_fold: Literal["earlier", "later"] = Field(
        "earlier", description="local_time that happens twice: which occurrence"
    )
    next_free_slot: StrictBool = Field(
        False, description="each channel's next free weekly posting slot"
    )

    def to_when(self) -> When:
        forms = sum((self.scheduled_at is not None, self.local_time is not None))
        forms += self.next_free_slot
        if forms != 1:
            raise InvalidInput(
                "give exactly one of scheduled_at, local_time (with an optional timezone) "
                "or next_free_slot",
                field="scheduled_at",
            )
        if self.timezone is not None and self.local_time is None:
            raise InvalidInput("timezone goes with local_time", field="timezone")
        if self.scheduled_at is not None:
            return AtInstant(self.scheduled_at)
        if self.local_time is not None:
            return AtLocal(self.local_time, self.timezone, self.on_gap, self.on_fold)
        return NextFreeSlot()


class PostCreate(TimeFields):
    model_config = request_config(
        {
            "channel_ids": ["ch_019c3f2a8b1e0a1b2c3d4e5f6a7b8c9d"],
            "content": {"text": "Fresh croissants at 7!", "link": "https://acme.test"},
            "scheduled_at": "2030-03-01T06:00:00Z",
        },
        {
            "channel_ids": [
                "ch_019c3f2a8b1e0a1b2c3d4e5f6a7b8c9d",
                "ch_019c3f2a8b1f9f8e7d6c5b4a3f2e1d0c",
            ],
            "content": {
                "text": "Our new oven, in action",
                "media": [{"url": "https://cdn.acme.test/oven.jpg", "kind": "image"}],
            },
            "overrides": {
                "youtube": {
                    "title": "The new oven",
                    "media": [{"url": "https://cdn.acme.test/oven.mp4", "kind": "video"}],
                }
            },
            "local_time": "2030-03-29T02:30",
            "timezone": "Europe/Paris",
            "on_gap": "shift",
        },
        {
            "channel_ids": ["ch_019c3f2a8b1e0a1b2c3d4e5f6a7b8c9d"],
            "content": {"text": "Queued for our next slot"},
            "next_free_slot": True,
        },
    )

    channel_ids: list[ObjectId] = Field(min_length=1, max_length=MAX_TARGETS)
    content: ContentIn
    overrides: Overrides = Field(default_factory=Overrides)

    def to_draft(self) -> PostDraft:
        return PostDraft(
            tuple(self.channel_ids),
            self.content.to_content(),
            self.overrides.to_overrides(),
            self.to_when(),
        )


class PostReschedule(TimeFields):
    """The new time of the post's deliveries that are still waiting."""

    model_config = request_config(
        {"scheduled_at": "2030-03-02T08:00:00Z"},
        {"local_time": "2030-03-02T09:00"},
        {"next_free_slot": True},
    )


class AttemptPublic(Public):
    number: int
    started_at: datetime
    finished_at: datetime
    outcome: str
    error: str | None


class DeliveryPublic(Public):
    """The post on one channel."""

    id: str
    post_id: str
    channel_id: str
    platform: Platform
    status: str = Field(description="scheduled, claimed, publishing, published, retry_wait, ...")
    scheduled_at: datetime = Field(description="The due time, UTC")
    next_attempt_at: datetime | None
    attempt_count: int
    published_at: datetime | None
    external_id: str | None = Field(description="The platform's id of the published post")
    last_error: str | None
    updated_at: datetime | None

    @classmethod
    def fields_of(cls, d: Delivery) -> dict[str, object]:
        return {
            "id": d.id,
            "post_id": d.post_id,
            "channel_id": d.channel_id,
            "platform": d.platform,
            "status": d.state.value,
            "scheduled_at": d.due_at,
            "next_attempt_at": d.next_attempt_at,
            "attempt_count": d.attempts,
            "published_at": d.published_at,
            "external_id": d.external_id,
            "last_error": d.last_error,
            "updated_at": d.updated_at,
        }


class DeliveryDetail(DeliveryPublic):
    attempts: list[AttemptPublic] = Field(description="Every request and look-up, oldest first")

    @classmethod
    def with_attempts(cls, delivery: Delivery, attempts: list[Attempt]) -> DeliveryDetail:
        return cls.model_validate(
            {**cls.fields_of(delivery), "attempts": [AttemptPublic.of(a) for a in attempts]}
        )


class _PostFields(BaseModel):
    id: str
    created_at: datetime
    content: ContentIn
    overrides: dict[Platform, OverrideIn]

    @classmethod
    def fields_of(cls, view: PostView) -> dict[str, object]:
        overrides: Mapping[Platform, ContentOverride] = view.post.overrides
        return {
            "id": view.post.id,
            "created_at": view.post.created_at,
            "content": ContentIn.of(view.post.content),
            "overrides": {p: OverrideIn.of(o) for p, o in overrides.items()},
        }


class PostPublic(_PostFields):
    deliveries: list[DeliveryPublic]

    @classmethod
    def of(cls, view: PostView) -> PostPublic:
        return cls.model_validate(
            {**cls.fields_of(view), "deliveries": [DeliveryPublic.of(d) for d in view.deliveries]}
        )


class PostDetail(_PostFields):
    deliveries: list[DeliveryDetail]

    @classmethod
    def of(cls, view: PostView) -> PostDetail:
        attempts = view.attempts or {}
        deliveries = [
            DeliveryDetail.with_attempts(d, attempts.get(d.id, [])) for d in view.deliveries
        ]
        return cls.model_validate({**cls.fields_of(view), "deliveries": deliveries})


class PostPage(BaseModel):
    items: list[PostPublic]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: done")
