"""The wire format of a job: JSON that reads back to an equal :class:`~herald.domain.Job`.

A queue that carries jobs between processes sends them in this form. Instants keep their UTC
offset (ISO 8601), enums travel as their values, absent optional fields are left out. Every
field of the delivery and the channel is written by name, so a field added to either without
being added here fails the round-trip test (tests/unit/test_queue_wire.py) instead of being
dropped on the way.

A message that cannot be read raises :class:`UndecodableJob`; a queue drops such a message
rather than handing it out again and again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from herald.domain import Channel, ChannelStatus, Content, Delivery, Job, Platform
from herald.errors import QueueError
from herald.states import DeliveryState

__all__ = ["UndecodableJob", "decode_job", "decode_jobs", "encode_job", "encode_jobs"]


class UndecodableJob(QueueError):
    """A message is not a job this version of Herald can read."""


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _read_instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _present(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def _delivery(d: Delivery) -> dict[str, Any]:
    return _present(
        id=d.id,
        post_id=d.post_id,
        channel_id=d.channel_id,
        platform=d.platform.value,
        due_at=_instant(d.due_at),
        state=d.state.value,
        next_attempt_at=_instant(d.next_attempt_at),
        attempts=d.attempts,
        retries=d.retries,
        checks=d.checks,
        check_first=d.check_first,
        check_since=_instant(d.check_since),
        external_id=d.external_id,
        reconciled=d.reconciled,
        last_error=d.last_error,
        published_at=_instant(d.published_at),
        updated_at=_instant(d.updated_at),
    )


def _read_delivery(raw: Mapping[str, Any]) -> Delivery:
    due_at = _read_instant(raw["due_at"])
    if due_at is None:
        raise UndecodableJob("a delivery without a due time")
    return Delivery(
        id=raw["id"],
        post_id=raw["post_id"],
        channel_id=raw["channel_id"],
        platform=Platform(raw["platform"]),
        due_at=due_at,
        state=DeliveryState(raw["state"]),
        next_attempt_at=_read_instant(raw.get("next_attempt_at")),
        attempts=raw["attempts"],
        retries=raw["retries"],
        checks=raw["checks"],
        check_first=raw["check_first"],
        check_since=_read_instant(raw.get("check_since")),
        external_id=raw.get("external_id"),
        reconciled=raw["reconciled"],
        last_error=raw.get("last_error"),
        published_at=_read_instant(raw.get("published_at")),
        updated_at=_read_instant(raw.get("updated_at")),
    )


def _channel(c: Channel) -> dict[str, Any]:
    return _present(
        id=c.id,
        platform=c.platform.value,
        external_id=c.external_id,
        name=c.name,
        timezone=c.timezone,
        credentials_ref=c.credentials_ref,
        status=c.status.value,
        workspace_id=c.workspace_id,
        deleted_at=_instant(c.deleted_at),
        region=c.region,
    )


def _read_channel(raw: Mapping[str, Any]) -> Channel:
    return Channel(
        id=raw["id"],
        platform=Platform(raw["platform"]),
        external_id=raw["external_id"],
        name=raw["name"],
        timezone=raw["timezone"],
        credentials_ref=raw["credentials_ref"],
        status=ChannelStatus(raw["status"]),
        workspace_id=raw["workspace_id"],
        deleted_at=_read_instant(raw.get("deleted_at")),
        region=raw.get("region"),
    )


def _job_body(job: Job) -> dict[str, Any]:
    return {
        "delivery": _delivery(job.delivery),
        "channel": _channel(job.channel),
        "content": job.content.to_dict(),
        "claim_token": job.claim_token,
    }


def _read_job(raw: Mapping[str, Any]) -> Job:
    return Job(
        delivery=_read_delivery(raw["delivery"]),
        channel=_read_channel(raw["channel"]),
        content=Content.from_dict(raw["content"]),
        claim_token=raw["claim_token"],
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_job(job: Job) -> str:
    """``job`` as compact JSON (the caller adds the format version next to it)."""
    return _dumps(_job_body(job))


def encode_jobs(jobs: Sequence[Job]) -> str:
    """``jobs`` as one compact JSON array: several jobs in one message."""
    return _dumps([_job_body(job) for job in jobs])


def decode_job(data: str | bytes) -> Job:
    """The job ``data`` holds; :class:`UndecodableJob` if it holds none."""
    with _undecodable():
        return _read_job(json.loads(data))


def decode_jobs(data: str | bytes) -> list[Job]:
    """The jobs of an :func:`encode_jobs` array; :class:`UndecodableJob` unless it holds at
    least one job and nothing that is not one."""
    with _undecodable():
        raw = json.loads(data)
        if not isinstance(raw, list) or not raw:
            raise UndecodableJob("not a non-empty array of jobs")
        return [_read_job(item) for item in raw]


@contextmanager
def _undecodable() -> Iterator[None]:
    try:
        yield
    except UndecodableJob:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # json.JSONDecodeError and unknown enum values are ValueErrors; a wrong shape is a
        # KeyError, TypeError or AttributeError.
        raise UndecodableJob(f"not a job: {exc}") from exc
