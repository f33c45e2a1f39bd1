"""What every schema shares: field types (text that can be stored, bounded identifiers), the
configuration of request models, and the base of response models."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints
from pydantic.config import JsonDict

__all__ = [
    "ID_PATTERN",
    "IsoDateTime",
    "Name",
    "ObjectId",
    "Public",
    "Text",
    "Timezone",
    "not_blank",
    "request_config",
    "storable",
]

_ISO_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def iso_only(value: Any) -> Any:
    """Date-times as ISO 8601 text only: no Unix numbers, no bare dates, no guessing."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE_TIME.match(value):
        raise ValueError("give an ISO 8601 date and time, e.g. 2030-03-01T09:00:00Z")
    return value


def storable(value: str) -> str:
    """Refuse text a database cannot hold: a lone surrogate (a JSON ``\\ud800`` escape
    decodes to one) is not UTF-8, and PostgreSQL refuses the NUL character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogate code points)") from None
    if "\x00" in value:
        raise ValueError("text must not contain the NUL character")
    return value


def not_blank(value: str) -> str:
    """Refuse text that is only white space: a name or an id no one can read or type."""
    if not value.strip():
        raise ValueError("must not be blank")
    return value


#: Any text the store can hold.
Text = Annotated[str, AfterValidator(storable)]
#: A display name.
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(storable),
    AfterValidator(not_blank),
]
#: What an id given in a path, query or body may look like. Herald hands out ``ch_`` then 32 hex
#: digits (the millisecond it was made, then random: herald.domain.new_id); ids it made before
#: had 20 random hex digits, and both are still found. Wider than either on purpose: an id
#: Herald never made is simply not found (404), never refused for its shape.
ID_PATTERN = r"^[A-Za-z0-9_\-]+$"
#: An object id given in a body.
ObjectId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
#: An IANA time-zone name; checked against the zone database by the services.
Timezone = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(storable)]
#: An ISO 8601 date and time (with or without offset, as the field says).
IsoDateTime = Annotated[datetime, BeforeValidator(iso_only)]


def request_config(*examples: JsonDict) -> ConfigDict:
    """A request body's model configuration: unknown fields are refused (a misspelt optional
    field must not be ignored silently), and ``examples`` go into the OpenAPI schema."""
    if not examples:
        return ConfigDict(extra="forbid")
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


class Public(BaseModel):
    """A response model read from a domain object: each field from the object's attribute of
    the same name (pydantic's ``from_attributes``: a missing one is a validation error naming
    the field), unless the model maps the object itself in :meth:`fields_of`."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def fields_of(cls, source: Any) -> dict[str, object]:
        return dict(cls.model_validate(source))

    @classmethod
    def of(cls, source: Any) -> Self:
        return cls.model_validate(cls.fields_of(source))
