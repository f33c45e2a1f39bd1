"""The wire format of a job (herald.queues.wire): every field reads back equal."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone

import pytest

from herald.domain import (
    Channel,
    ChannelStatus,
    Content,
    Delivery,
    Job,
    Media,
    MediaKind,
    Platform,
    new_id,
)
from herald.queues.wire import UndecodableJob, decode_job, encode_job
from herald.states import DeliveryState
from herald.testing import channel


def full_job() -> Job:
    """A job with every optional field set, instants in two zones."""
    at = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)
    paris = timezone(timedelta(hours=2))
    ch = channel(
        Platform.INSTAGRAM,
        status=ChannelStatus.NEEDS_REAUTH,
        workspace_id="ws_other",
        deleted_at=at.astimezone(paris),
        region="eu-west-1",
    )
    delivery = Delivery(
        id=new_id("dlv"),
        post_id=new_id("post"),
        channel_id=ch.id,
        platform=ch.platform,
        due_at=at,
        state=DeliveryState.UNCONFIRMED,
        next_attempt_at=at + timedelta(minutes=5),
        attempts=3,
        retries=2,
        checks=1,
        check_first=True,
        check_since=at - timedelta(seconds=1),
        external_id="1789_42",
        reconciled=True,
        last_error="timeout — no answer",
        published_at=at.astimezone(paris),
        updated_at=at + timedelta(microseconds=1),
    )
    content = Content(
        text='Été ☀️ "quoted"\nline',
        link="https://example.com/a?b=c",
        media=(
            Media("https://cdn.example.com/1.jpg", MediaKind.IMAGE, alt_text="a cat"),
            Media("https://cdn.example.com/2.mp4", MediaKind.VIDEO),
        ),
        title="A title",
    )
    return Job(delivery, ch, content, claim_token=new_id("claim"))


def test_a_job_with_every_field_set_reads_back_equal():
    job = full_job()
    back = decode_job(encode_job(job))
    assert back == job
    assert back.delivery.published_at is not None
    assert back.delivery.published_at.utcoffset() == timedelta(hours=2)


def test_a_job_with_only_the_required_fields_reads_back_equal():
    ch = channel()
    delivery = Delivery(new_id("dlv"), new_id("post"), ch.id, ch.platform, datetime.now(UTC))
    job = Job(delivery, ch, Content(), claim_token="c")
    assert decode_job(encode_job(job)) == job
    assert decode_job(encode_job(job).decode()) == job  # text reads as well as bytes


def test_every_field_of_a_delivery_and_a_channel_is_written():
    # A field added to Delivery or Channel travels too.
    raw = json.loads(encode_job(full_job()))
    assert set(raw["delivery"]) == {f.name for f in fields(Delivery)}
    assert set(raw["channel"]) == {f.name for f in fields(Channel)}
    assert set(raw) == {f.name for f in fields(Job)}


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[]",
        "{}",
        '{"delivery": {}, "channel": {}, "content": {}, "claim_token": "c"}',
        encode_job(full_job()).replace(b'"instagram"', b'"myspace"'),
        encode_job(full_job()).replace(b'"unconfirmed"', b'"lost"'),
        encode_job(full_job()).replace(b'"2026-03-29T01:30:15.123456Z"', b'"yesterday"'),
        encode_job(full_job()).replace(b'"attempts":3', b'"attempts":"3"'),
    ],
)
def test_a_message_that_holds_no_job_is_undecodable(data):
    with pytest.raises(UndecodableJob):
        decode_job(data)


def test_a_job_put_by_the_version_before_reads_back_equal():
    """That version wrote instants with ``+00:00`` and left out absent optional fields."""
    job = full_job()
    raw = json.loads(encode_job(job))
    raw["delivery"]["due_at"] = job.delivery.due_at.isoformat()  # 2026-...+00:00
    for absent in ("external_id", "next_attempt_at"):
        raw["delivery"].pop(absent)
    raw["content"]["media"][1].pop("alt_text")
    old = decode_job(json.dumps(raw))
    assert old.delivery.due_at == job.delivery.due_at
    assert old.delivery.external_id is None
    assert old.delivery.next_attempt_at is None
    assert old.content == job.content
