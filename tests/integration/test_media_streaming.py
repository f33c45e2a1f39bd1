"""Media streamed from its URL to the platform: chunks, caps, drops, and flat memory.

The connectors run against the platform simulator, which serves the media files (made as
they are sent) and counts and hashes what the uploads carry: its audit says how many bytes
arrived and whether they were the file's, without either side holding the file.
"""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from herald.domain import Content, Media, MediaKind, Platform
from herald.errors import ContentRejected, OutcomeUnknown, RateLimited, TransientPlatformError
from herald.simulator import CallFaults, CallKind, FaultConfig, Simulator, media_sha256
from herald.states import DeliveryState
from herald.types import Connector
from tests.integration.connector_rig import Rig, new_rig, quiet_config
from tests.integration.pipeline import open_pipeline

YT, LI = Platform.YOUTUBE, Platform.LINKEDIN
UNIT = 256 * 1024
MiB = 1024 * 1024


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(quiet_config()) as running:
        yield running


RigFactory = Callable[..., Rig]


@pytest.fixture
async def make_rig(sim: Simulator) -> AsyncIterator[RigFactory]:
    made: list[Connector] = []

    def make(platform: Platform, **overrides: Any) -> Rig:
        return new_rig(sim, platform, made, **overrides)

    yield make
    for connector in made:
        await connector.aclose()


def video(rig: Rig, size: int, **worse: Any) -> tuple[Content, str]:
    """A post with a video of ``size`` bytes on the simulator; its expected SHA-256."""
    name = f"{uuid.uuid4().hex[:10]}.mp4"
    url = rig.sim.media_url("video", name, size=size, **worse)
    content = Content(text=f"clip {name}\nabout it", media=(Media(url, MediaKind.VIDEO),))
    return content, media_sha256(f"video/{name}", size)


def image(rig: Rig, size: int, **worse: Any) -> tuple[Content, str]:
    name = f"{uuid.uuid4().hex[:10]}.jpg"
    url = rig.sim.media_url("image", name, size=size, **worse)
    content = Content(text=f"pic {name}", media=(Media(url, MediaKind.IMAGE),))
    return content, media_sha256(f"image/{name}", size)


def uploaded(rig: Rig) -> list[tuple[int | None, str | None]]:
    return [(post.media_bytes, post.media_sha256) for post in rig.posts()]


# -- YouTube: chunks -------------------------------------------------------------------------


@pytest.mark.parametrize("length", [True, False], ids=["length", "no-length"])
async def test_a_video_arrives_whole_in_chunks(make_rig: RigFactory, length: bool) -> None:
    rig = make_rig(YT, upload_chunk_bytes=UNIT)
    size = 3 * UNIT + 12_345
    content, digest = video(rig, size, length=length)
    published = await rig.connector.publish(rig.request(content))
    assert rig.held() == [published.external_id]
    assert uploaded(rig) == [(size, digest)]
    puts = [r for r in rig.sim.audit.requests(YT) if r.method == "PUT"]
    assert len(puts) == 4  # three full chunks and the short last one
    assert rig.sim.audit.violations() == []


async def test_a_source_that_drops_is_read_on_with_a_range(make_rig: RigFactory) -> None:
    rig = make_rig(YT, upload_chunk_bytes=UNIT)
    size = 4 * UNIT
    content, digest = video(rig, size, cut=UNIT + 1000)  # answers from UNIT + 1000 on are whole
    await rig.connector.publish(rig.request(content))
    assert uploaded(rig) == [(size, digest)]


async def test_a_source_that_always_drops_fails_the_attempt_and_makes_no_video(
    make_rig: RigFactory,
) -> None:
    rig = make_rig(YT, upload_chunk_bytes=UNIT)
    content, _ = video(rig, 4 * UNIT, cut=2 * UNIT + 1000, ranges=False)
    request = rig.request(content)
    with pytest.raises(TransientPlatformError) as failed:
        await rig.connector.publish(request)
    assert not isinstance(failed.value, OutcomeUnknown)
    assert rig.posts() == []
    assert await rig.connector.find(request) is None


async def test_chunks_that_drop_after_arriving_make_exactly_one_video(
    make_rig: RigFactory,
) -> None:
    """Every chunk's answer is lost: each time the session says how far it got."""
    rig = make_rig(YT, upload_chunk_bytes=UNIT)
    size = 3 * UNIT + 1
    content, digest = video(rig, size)
    rig.sim.set_faults(YT, FaultConfig(drop_rate=1.0))
    published = await rig.connector.publish(rig.request(content))
    (post,) = rig.posts()
    assert post.post_id == published.external_id
    assert not post.delivered
    assert (post.media_bytes, post.media_sha256) == (size, digest)
    assert rig.sim.audit.injected(YT) == {"drop": 4}


def chunk_starts(rig: Rig) -> list[list[tuple[int, int]]]:
    """Per upload session, in order: each chunk PUT's first byte and status (0: no answer);
    status queries left out."""
    uploads: list[list[tuple[int, int]]] = []
    for record in rig.sim.audit.requests(YT):
        if record.method == "POST":
            uploads.append([])
        elif record.method == "PUT" and record.content_range and "*/" not in record.content_range:
            first = int(record.content_range.split()[1].split("-")[0])
            uploads[-1].append((first, record.status))
    return uploads


async def test_chunks_cut_mid_body_resume_from_the_units_the_session_kept(
    make_rig: RigFactory,
) -> None:
    """Chunk PUTs are cut part-way through (the cut fault): each time the session says how far
    it got, in whole 256 KiB units, and the upload goes on from there."""
    chunk = 16 * UNIT
    rig = make_rig(YT, upload_chunk_bytes=chunk)
    rig.sim.set_faults(YT, FaultConfig(cut_rate=0.5))
    # Chunks of 16, 16 and 8 units and 777 bytes. MAX_STALLS cuts in a row that keep nothing
    # end an attempt (the session does not move on): large chunks make that rare, and this
    # seed (quiet_config's) has none.
    size = 40 * UNIT + 777
    made = []
    for _ in range(3):
        content, digest = video(rig, size)
        published = await rig.connector.publish(rig.request(content))
        made.append((published.external_id, size, digest))
    assert [(post.post_id, post.media_bytes, post.media_sha256) for post in rig.posts()] == made
    uploads = chunk_starts(rig)
    assert len(uploads) == 3  # one session each: no attempt started over
    resumed_mid_chunk = 0
    for puts in uploads:
        cuts = [(first, after) for (first, status), (after, _) in pairwise(puts) if status == 0]
        assert cuts, "every upload was cut at least once"
        # Never back before the chunk that was cut (from 0, say): the session kept its start.
        assert all(after >= first for first, after in cuts)
        resumed_mid_chunk += sum(after > first and after % chunk != 0 for first, after in cuts)
    assert resumed_mid_chunk > 0  # from the units a cut chunk left, not from its start
    assert rig.sim.audit.injected(YT)["cut"] >= 3


async def test_a_chunk_refused_before_the_last_is_certain_no_video(make_rig: RigFactory) -> None:
    rig = make_rig(YT, upload_chunk_bytes=UNIT)
    content, _ = video(rig, 3 * UNIT)
    rig.sim.set_faults(YT, FaultConfig(error_rate=1.0))
    with pytest.raises(TransientPlatformError) as failed:
        await rig.connector.publish(rig.request(content))
    assert not isinstance(failed.value, OutcomeUnknown)
    assert rig.posts() == []


#: A status query's faults, one at a time (a timeout holds it 50 ms, then closes it).
STATUS_FAULTS = {
    "error": CallFaults(error_rate=1.0),
    "throttle": CallFaults(throttle_rate=1.0),
    "drop": CallFaults(drop_rate=1.0),
    "timeout": CallFaults(timeout_rate=1.0),
}


def status_queries_fail(fault: str) -> FaultConfig:
    """Every chunk arrives and its answer is lost; every status query then fails with
    ``fault``."""
    return FaultConfig(drop_rate=1.0, hang_s=0.05, calls={CallKind.STATUS: STATUS_FAULTS[fault]})


@pytest.mark.parametrize("fault", list(STATUS_FAULTS))
async def test_a_failed_status_query_before_the_last_chunk_ends_the_attempt(
    make_rig: RigFactory, fault: str
) -> None:
    """The session holds the first chunk but cannot say so: the attempt ends, certain that no
    video was made (the throttle itself when throttled), with nothing more sent to that
    session (never the file again from byte 0); the next attempt makes the video once."""
    rig = make_rig(YT, upload_chunk_bytes=UNIT)
    size = 3 * UNIT + 1
    content, digest = video(rig, size)
    rig.sim.set_faults(YT, status_queries_fail(fault))
    with pytest.raises((TransientPlatformError, RateLimited)) as failed:
        await rig.connector.publish(rig.request(content))
    assert isinstance(failed.value, RateLimited if fault == "throttle" else TransientPlatformError)
    assert not isinstance(failed.value, OutcomeUnknown)
    assert rig.sim.audit.injected(YT) == {"drop": 1, f"status:{fault}": 1}
    assert rig.posts() == []
    rig.sim.set_faults(YT, FaultConfig())
    published = await rig.connector.publish(rig.request(content, attempt=2))
    assert [(p.post_id, p.media_bytes, p.media_sha256) for p in rig.posts()] == [
        (published.external_id, size, digest)
    ]
    first, second = chunk_starts(rig)
    assert first == [(0, 0)]
    assert [start for start, _ in second] == [0, UNIT, 2 * UNIT, 3 * UNIT]


@pytest.mark.parametrize("fault", list(STATUS_FAULTS))
async def test_a_failed_status_query_after_the_last_chunk_leaves_the_outcome_unknown(
    make_rig: RigFactory, fault: str
) -> None:
    """The last chunk made the video and lost its answer, and the status query fails: the
    outcome is unknown, nothing is sent again, and the look-up finds the one video."""
    rig = make_rig(YT, upload_chunk_bytes=UNIT)
    size = UNIT // 2  # one chunk, the last
    content, digest = video(rig, size)
    rig.sim.set_faults(YT, status_queries_fail(fault))
    request = rig.request(content)
    with pytest.raises(OutcomeUnknown):
        await rig.connector.publish(request)
    (post,) = rig.posts()
    assert (post.delivered, post.media_bytes, post.media_sha256) == (False, size, digest)
    assert rig.sim.audit.injected(YT) == {"drop": 1, f"status:{fault}": 1}
    assert chunk_starts(rig) == [[(0, 0)]]
    found = await rig.connector.find(request)
    assert found is not None
    assert found.external_id == post.post_id


# -- caps ------------------------------------------------------------------------------------


async def test_a_video_declared_over_the_cap_is_refused_before_any_platform_request(
    make_rig: RigFactory,
) -> None:
    rig = make_rig(YT, max_media_bytes=MiB)
    content, _ = video(rig, MiB + 1)
    with pytest.raises(ContentRejected) as refused:
        await rig.connector.publish(rig.request(content))
    assert (
        refused.value.message == "youtube: media too large: over 1 MiB (1,048,577 bytes declared)"
    )
    assert rig.requests() == 0  # no session: no quota spent


async def test_a_video_without_length_is_cut_off_at_the_cap(make_rig: RigFactory) -> None:
    rig = make_rig(YT, max_media_bytes=MiB, upload_chunk_bytes=UNIT)
    content, _ = video(rig, 3 * MiB, length=False)
    with pytest.raises(ContentRejected) as refused:
        await rig.connector.publish(rig.request(content))
    assert refused.value.message == "youtube: media too large: over 1 MiB"
    assert rig.posts() == []  # the chunks before the cap made no video


@pytest.mark.parametrize("length", [True, False], ids=["length", "no-length"])
async def test_an_image_is_streamed_to_linkedin(make_rig: RigFactory, length: bool) -> None:
    rig = make_rig(LI)
    content, digest = image(rig, 3 * MiB + 7, length=length)
    await rig.connector.publish(rig.request(content))
    assert uploaded(rig) == [(3 * MiB + 7, digest)]


@pytest.mark.parametrize("length", [True, False], ids=["length", "no-length"])
async def test_an_image_over_the_cap_is_refused(make_rig: RigFactory, length: bool) -> None:
    rig = make_rig(LI, max_media_bytes=MiB)
    content, _ = image(rig, 2 * MiB, length=length)
    with pytest.raises(ContentRejected) as refused:
        await rig.connector.publish(rig.request(content))
    declared = " (2 MiB declared)" if length else ""
    assert refused.value.message == f"linkedin: media too large: over 1 MiB{declared}"
    assert rig.posts() == []


async def test_the_tenant_sees_the_refusal_on_a_failed_delivery(
    sim: Simulator, tmp_path: Path
) -> None:
    """End to end: the engine fails the delivery for good, once, with the refusal's words."""
    pipe = await open_pipeline(sim, tmp_path, youtube={"max_media_bytes": 1000})
    try:
        channel = await pipe.channel(YT)
        [delivery_id] = await pipe.schedule([channel])  # its video: 4,096 bytes
        await pipe.run()
        delivery = (await pipe.deliveries())[delivery_id]
    finally:
        await pipe.store.close()
    assert delivery.state is DeliveryState.FAILED
    assert delivery.last_error == "youtube: media too large: over 1,000 bytes (4 KiB declared)"
    assert delivery.attempts == 1
    assert len(sim.audit.requests(YT)) == 0  # no upload session, no quota


# -- memory ----------------------------------------------------------------------------------

#: A file of this size goes through each upload below.
STREAMED = 96 * MiB
#: The most the Python heap may grow meanwhile: connector, media server and simulator
#: together, in one process. A file buffered whole would take six times this.
HEAP_BOUND = 16 * MiB


async def peak_heap_of(rig: Rig, content: Content) -> int:
    tracemalloc.start()
    try:
        await rig.connector.publish(rig.request(content))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("length", [True, False], ids=["length", "no-length"])
async def test_a_large_video_streams_in_flat_memory(make_rig: RigFactory, length: bool) -> None:
    rig = make_rig(YT, upload_chunk_bytes=4 * MiB)
    content, digest = video(rig, STREAMED, length=length)
    peak = await peak_heap_of(rig, content)
    assert uploaded(rig) == [(STREAMED, digest)]
    assert peak < HEAP_BOUND, f"peak heap {peak / MiB:.1f} MiB"


async def test_a_large_image_streams_in_flat_memory(make_rig: RigFactory) -> None:
    rig = make_rig(LI, max_media_bytes=STREAMED)
    content, digest = image(rig, STREAMED)
    peak = await peak_heap_of(rig, content)
    assert uploaded(rig) == [(STREAMED, digest)]
    assert peak < HEAP_BOUND, f"peak heap {peak / MiB:.1f} MiB"
