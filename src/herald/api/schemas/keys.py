"""The caller's workspace and its API keys."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from herald.api.schemas.common import Name, Public, request_config
from herald.domain import ApiKey

__all__ = ["ApiKeyCreate", "ApiKeyCreated", "ApiKeyPublic", "WorkspacePublic"]


class WorkspacePublic(Public):
    id: str
    name: str


class ApiKeyCreate(BaseModel):
    model_config = request_config({"name": "deploy bot"})

    name: Name


class ApiKeyPublic(Public):
    id: str
    prefix: str = Field(description="The key's public start, to recognise it in listings")
    name: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The whole key: shown this once, never again")

    @classmethod
    def issued(cls, key: ApiKey, token: str) -> ApiKeyCreated:
        return cls.model_validate({**ApiKeyPublic.fields_of(key), "key": token})
