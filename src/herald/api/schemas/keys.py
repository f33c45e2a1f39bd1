"""API keys of a workspace."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from herald.api.schemas.common import Name
from herald.domain import ApiKey

__all__ = ["ApiKeyCreate", "ApiKeyCreated", "ApiKeyPublic"]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "deploy bot"}]}
    )

    name: Name


class ApiKeyPublic(BaseModel):
    id: str
    prefix: str = Field(description="The key's public start, to recognise it in listings")
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def fields_of(cls, key: ApiKey) -> dict[str, object]:
        return {
            "id": key.id,
            "prefix": key.prefix,
            "name": key.name,
            "created_at": key.created_at,
            "revoked_at": key.revoked_at,
        }

    @classmethod
    def of(cls, key: ApiKey) -> ApiKeyPublic:
        return cls.model_validate(cls.fields_of(key))


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The whole key: shown this once, never again")

    @classmethod
    def issued(cls, key: ApiKey, token: str) -> ApiKeyCreated:
        return cls.model_validate({**cls.fields_of(key), "key": token})
