"""The wire format of a job: JSON that reads back to an equal :class:`~herald.domain.Job`.

A queue that carries jobs between processes sends them in this form. Instants keep their UTC
offset (ISO 8601), enums travel as their values, every field by its name. The format is
msgspec's for the domain's dataclasses: the fields are read off the classes themselves, so a
field added to a delivery or a channel travels without a line here, and a message missing a
field that has a default (one put by an earlier version) still reads. msgspec rather than the
standard library's json: encoding and decoding were about a twentieth of a worker's and a
dispatcher's CPU per delivery (py-spy), and msgspec does each 5 to 13 times faster
(tests/unit/test_queue_wire.py holds the round trip; docs/architecture.md, the figures).

A message that cannot be read raises :class:`UndecodableJob`; a queue drops such a message
rather than handing it out again and again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import msgspec

from herald.domain import Job
from herald.errors import QueueError

__all__ = ["UndecodableJob", "decode_job", "decode_jobs", "encode_job", "encode_jobs"]

_encoder = msgspec.json.Encoder()
_one = msgspec.json.Decoder(Job)
_many = msgspec.json.Decoder(list[Job])


class UndecodableJob(QueueError):
    """A message is not a job this version of Herald can read."""


def encode_job(job: Job) -> bytes:
    """``job`` as compact JSON (the caller adds the format version next to it)."""
    return _encoder.encode(job)


def encode_jobs(jobs: Sequence[Job]) -> bytes:
    """``jobs`` as one compact JSON array: several jobs in one message."""
    return _encoder.encode(list(jobs))


def decode_job(data: str | bytes) -> Job:
    """The job ``data`` holds; :class:`UndecodableJob` if it holds none."""
    with _undecodable():
        return _one.decode(data)


def decode_jobs(data: str | bytes) -> list[Job]:
    """The jobs of an :func:`encode_jobs` array; :class:`UndecodableJob` unless it holds at
    least one job and nothing that is not one."""
    with _undecodable():
        jobs = _many.decode(data)
    if not jobs:
        raise UndecodableJob("not a job: an empty array")
    return jobs


@contextmanager
def _undecodable() -> Iterator[None]:
    try:
        yield
    except (msgspec.MsgspecError, ValueError, TypeError) as exc:
        # Not JSON, or not a job's shape or types (msgspec's errors); a value the domain's own
        # checks refuse (ValueError, TypeError).
        raise UndecodableJob(f"not a job: {exc}") from exc
