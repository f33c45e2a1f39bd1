"""The connectors against the platform simulator: faults, throttles, duplicates, media, paging.

What every connector does is the contract (tests/suites/connector_contract.py, run on these
connectors by test_connector_contract.py). Each connector talks HTTP to a real local simulator
(herald.simulator) that follows docs/platforms.md; the simulator's audit, counted on the
receiving side, is the judge of what was published. Faults are switched on per test with
probability 1, so nothing is left to chance and no test waits on a timer it does not control.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from herald.domain import Content, Media, MediaKind, Platform
from herald.errors import (
    AuthExpired,
    ContentRejected,
    DuplicateRejected,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    RequestNotSent,
    TransientPlatformError,
)
from herald.simulator import CallFaults, CallKind, FaultConfig, Simulator
from herald.testing import eventually
from herald.types import Connector, Published, PublishRequest
from tests.integration.connector_rig import (
    PAUSE_S,
    PLATFORMS,
    Rig,
    good_content,
    new_rig,
    opened_rig,
    quiet_config,
)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(quiet_config()) as running:
        yield running


RigFactory = Callable[..., Any]


@pytest.fixture
async def make_rig(sim: Simulator) -> AsyncIterator[RigFactory]:
    made: list[Connector] = []

    def make(platform: Platform, **overrides: Any) -> Rig:
        return new_rig(sim, platform, made, **overrides)

    yield make
    for connector in made:
        await connector.aclose()


@pytest.fixture(params=PLATFORMS, ids=[p.value for p in PLATFORMS])
def rig(request: pytest.FixtureRequest, make_rig: RigFactory) -> Rig:
    rig: Rig = make_rig(request.param)
    return rig


async def test_connector_satisfies_the_protocol(rig: Rig) -> None:
    assert isinstance(rig.connector, Connector)
    assert rig.connector.platform is rig.platform


async def test_publish_then_find_returns_the_same_id(rig: Rig) -> None:
    content = good_content(rig.sim, rig.platform)
    request = rig.request(content)
    assert await rig.connector.find(request) is None  # nothing there before publishing
    published = await rig.connector.publish(request)
    (post,) = rig.posts()
    assert post.post_id == published.external_id
    assert post.delivered
    found = await rig.connector.find(rig.request(content, attempt=2))
    assert found is not None
    assert found.external_id == published.external_id
    assert rig.sim.audit.violations() == []


async def test_find_ignores_other_posts(rig: Rig) -> None:
    await rig.connector.publish(rig.request(good_content(rig.sim, rig.platform)))
    assert await rig.connector.find(rig.request(good_content(rig.sim, rig.platform))) is None


async def test_a_platform_that_is_down_is_not_sent_to(rig: Rig) -> None:
    request = rig.request(good_content(rig.sim, rig.platform))
    await rig.sim.take_down(rig.platform)
    with pytest.raises(RequestNotSent) as publish:
        await rig.connector.publish(request)
    with pytest.raises(RequestNotSent) as look_up:
        await rig.connector.find(request)
    assert not publish.value.partial  # nothing reached it
    assert not look_up.value.partial
    await rig.sim.bring_up(rig.platform)
    published = await rig.connector.publish(request)
    assert [p.post_id for p in rig.posts()] == [published.external_id]


async def test_a_platform_that_goes_down_during_a_publish_leaves_it_unknown(rig: Rig) -> None:
    # The request was written before the platform died: it may have read it.
    hang = FaultConfig(timeout_rate=1.0, timeout_commit_share=0.0, hang_s=30.0)
    rig.sim.set_faults(rig.platform, hang)
    publish = asyncio.create_task(
        rig.connector.publish(rig.request(good_content(rig.sim, rig.platform)))
    )
    await eventually(lambda: rig.sim.audit.injected(rig.platform).get("timeout") == 1, within_s=10)
    await rig.sim.take_down(rig.platform)
    with pytest.raises(OutcomeUnknown):
        await asyncio.wait_for(publish, 10)
    await rig.sim.bring_up(rig.platform)


async def test_revoked_token_is_auth_expired(rig: Rig) -> None:
    rig.sim.revoke(rig.platform, rig.channel.external_id)
    request = rig.request(good_content(rig.sim, rig.platform))
    with pytest.raises(AuthExpired):
        await rig.connector.publish(request)
    with pytest.raises(AuthExpired):
        await rig.connector.find(request)
    assert rig.posts() == []


async def test_injected_server_error_publishes_nothing(rig: Rig) -> None:
    rig.sim.set_faults(rig.platform, FaultConfig(error_rate=1.0))
    request = rig.request(good_content(rig.sim, rig.platform))
    if rig.platform is Platform.YOUTUBE:
        # The upload session says no video was made: an exact, retryable failure.
        with pytest.raises(TransientPlatformError) as info:
            await rig.connector.publish(request)
        assert not isinstance(info.value, OutcomeUnknown)
    else:
        # docs/platforms.md: a temporary error answered to the call that creates the post
        # does not prove nothing was made; the look-up then proves it.
        with pytest.raises(OutcomeUnknown):
            await rig.connector.publish(request)
        assert await rig.connector.find(request) is None
    assert rig.posts() == []


async def test_drop_after_commit_is_found_by_a_look_up(rig: Rig) -> None:
    rig.sim.set_faults(rig.platform, FaultConfig(drop_rate=1.0))
    content = good_content(rig.sim, rig.platform)
    request = rig.request(content)
    outcome = await _publish_outcome(rig.connector, request)
    (post,) = rig.posts()
    assert not post.delivered  # the platform made it but never said so
    if rig.platform is Platform.YOUTUBE:
        # The upload session is asked after the drop: the common case is exact.
        assert isinstance(outcome, Published)
        assert outcome.external_id == post.post_id
    else:
        assert isinstance(outcome, OutcomeUnknown)
    rig.sim.set_faults(rig.platform, FaultConfig())
    found = await rig.connector.find(rig.request(content, attempt=2))
    assert found is not None
    assert found.external_id == post.post_id


@pytest.mark.parametrize(
    ("platform", "kind"),
    [
        (Platform.INSTAGRAM, CallKind.CONTAINER),
        (Platform.YOUTUBE, CallKind.UPLOAD),
        (Platform.LINKEDIN, CallKind.UPLOAD),
    ],
    ids=["ig-container", "yt-session", "li-image"],
)
async def test_a_dropped_set_up_call_leaves_an_orphan_and_publishes_once(
    make_rig: RigFactory, platform: Platform, kind: CallKind
) -> None:
    """The platform made the container, the upload session or the image, and the answer was
    lost: the attempt fails, certain that nothing was published, and the next one makes its
    own and publishes once; the orphan is never used."""
    rig: Rig = make_rig(platform)
    content = good_content(rig.sim, platform)
    if platform is Platform.LINKEDIN:
        image = Media(rig.sim.media_url("image", f"{uuid.uuid4().hex[:8]}.jpg"), MediaKind.IMAGE)
        content = replace(content, media=(image,))
    rig.sim.set_faults(platform, FaultConfig(calls={kind: CallFaults(drop_rate=1.0)}))
    with pytest.raises(TransientPlatformError) as failed:
        await rig.connector.publish(rig.request(content))
    assert not isinstance(failed.value, OutcomeUnknown)
    assert rig.sim.audit.injected(platform) == {f"{kind.value}:drop": 1}
    assert rig.posts() == []
    rig.sim.set_faults(platform, FaultConfig())
    published = await rig.connector.publish(rig.request(content, attempt=2))
    assert rig.held() == [published.external_id]
    assert rig.sim.audit.duplicates() == 0


async def _publish_outcome(connector: Connector, request: PublishRequest) -> object:
    try:
        return await connector.publish(request)
    except PlatformError as exc:
        return exc


async def test_timeout_after_commit_is_found_by_a_look_up(make_rig: RigFactory) -> None:
    for platform in PLATFORMS:
        rig: Rig = make_rig(platform, timeout_s=0.5)
        rig.sim.set_faults(
            platform, FaultConfig(timeout_rate=1.0, hang_s=30.0, timeout_commit_share=1.0)
        )
        content = good_content(rig.sim, platform)
        outcome = await _publish_outcome(rig.connector, rig.request(content))
        (post,) = rig.posts()
        expected = Published if platform is Platform.YOUTUBE else OutcomeUnknown
        assert isinstance(outcome, expected), (platform, outcome)
        rig.sim.set_faults(platform, FaultConfig())
        found = await rig.connector.find(rig.request(content, attempt=2))
        assert found is not None
        assert found.external_id == post.post_id


@pytest.mark.parametrize(
    ("platform", "faults", "scope", "retry_after"),
    [
        (
            Platform.FACEBOOK,
            FaultConfig(throttle_rate=1.0, graph_throttle_codes=(32,), regain_minutes=3),
            "channel",
            180.0,
        ),
        (
            Platform.FACEBOOK,
            FaultConfig(throttle_rate=1.0, graph_throttle_codes=(4,)),
            "app",
            PAUSE_S,
        ),
        (
            Platform.INSTAGRAM,
            FaultConfig(throttle_rate=1.0, graph_throttle_codes=(613,)),
            "channel",
            PAUSE_S,
        ),
        (Platform.LINKEDIN, FaultConfig(throttle_rate=1.0), "app", PAUSE_S),
        (Platform.LINKEDIN, FaultConfig(throttle_rate=1.0, retry_after_s=9), "app", 9.0),
        (Platform.YOUTUBE, FaultConfig(throttle_rate=1.0), "channel", PAUSE_S),
    ],
    ids=["fb-page", "fb-app", "ig", "li-bare", "li-retry-after", "yt"],
)
async def test_injected_throttle_is_rate_limited(
    make_rig: RigFactory,
    platform: Platform,
    faults: FaultConfig,
    scope: str,
    retry_after: float,
) -> None:
    rig: Rig = make_rig(platform)
    rig.sim.set_faults(platform, faults)
    with pytest.raises(RateLimited) as info:
        await rig.connector.publish(rig.request(good_content(rig.sim, platform)))
    assert (info.value.scope, info.value.retry_after) == (scope, retry_after)
    assert rig.posts() == []


async def test_a_throttled_token_refresh_is_a_throttle_not_a_lost_authorisation() -> None:
    async with opened_rig(Platform.YOUTUBE, quiet_config(youtube={"access_token_ttl_s": 1})) as rig:
        rig.sim.advance_clock(2)  # the access token has expired: the first call refreshes it
        throttled = FaultConfig(calls={CallKind.TOKEN: CallFaults(throttle_rate=1.0)})
        rig.sim.set_faults(Platform.YOUTUBE, throttled)
        with pytest.raises(RateLimited) as info:
            await rig.connector.publish(rig.request(good_content(rig.sim, Platform.YOUTUBE)))
        assert (info.value.scope, info.value.retry_after) == ("app", PAUSE_S)
        assert rig.sim.audit.injected(Platform.YOUTUBE) == {"token:throttle": 1}
        assert rig.posts() == []


async def test_publish_refuses_bad_content_before_any_request(rig: Rig) -> None:
    with pytest.raises(ContentRejected):
        await rig.connector.publish(rig.request(rig.refused()))
    assert rig.requests() == 0


async def test_media_posts(make_rig: RigFactory) -> None:
    """The multi-call flows: Facebook album, Instagram carousel, LinkedIn image upload."""
    sim_rig: Rig = make_rig(Platform.FACEBOOK)
    sim = sim_rig.sim
    tag = uuid.uuid4().hex[:8]
    images = tuple(
        Media(sim.media_url("image", f"{tag}{i}.jpg"), MediaKind.IMAGE) for i in range(3)
    )
    video = Media(sim.media_url("video", f"{tag}.mp4"), MediaKind.VIDEO)
    cases = [
        (sim_rig, Content(text=f"album {tag}", link="https://example.com", media=images)),
        (make_rig(Platform.INSTAGRAM), Content(text=f"set {tag}", media=(*images[:2], video))),
        (make_rig(Platform.LINKEDIN), Content(text=f"pic {tag}", media=(images[0],))),
    ]
    for rig, content in cases:
        published = await rig.connector.publish(rig.request(content))
        (post,) = rig.posts()
        assert post.post_id == published.external_id
        found = await rig.connector.find(rig.request(content, attempt=2))
        assert found is not None
        assert found.external_id == published.external_id
    assert sim.audit.violations() == []


# -- look-ups on a busy channel ---------------------------------------------------------------

#: Other posts published after the one looked up: more than one listing page of each platform
#: (100 a page on Graph and LinkedIn, 50 on YouTube).
BUSY = {
    Platform.FACEBOOK: 120,
    Platform.INSTAGRAM: 120,
    Platform.LINKEDIN: 120,
    Platform.YOUTUBE: 60,
}
#: The request path of each platform's listing (GET).
LISTING = {
    Platform.FACEBOOK: "/published_posts",
    Platform.INSTAGRAM: "/media",
    Platform.LINKEDIN: "/rest/posts",
    Platform.YOUTUBE: "/youtube/v3/playlistItems",
}


@pytest.fixture(params=PLATFORMS, ids=[p.value for p in PLATFORMS])
async def busy_rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    """A rig on a simulator whose daily limits leave room for a busy channel: connectors
    meter nothing themselves, and these tests are about look-ups, not limits."""
    config = quiet_config(
        instagram={"publishes_per_24h": 1000, "containers_per_24h": 1000},
        youtube={"insert_calls_per_day": 1000, "units_per_day": 100_000},
    )
    async with opened_rig(request.param, config) as rig:
        yield rig


def listing_calls(rig: Rig) -> int:
    path = LISTING[rig.platform]
    return sum(
        1
        for r in rig.sim.audit.requests(rig.platform)
        if r.method == "GET" and r.path.endswith(path)
    )


#: What the limiter is asked for the second listing page (meters with no known limit: none).
PAGE_USAGE = {
    Platform.FACEBOOK: [{"calls": 1}],
    Platform.INSTAGRAM: [],
    Platform.LINKEDIN: [],
    Platform.YOUTUBE: [{"units": 1}],
}


async def test_find_pages_through_a_busy_channel(busy_rig: Rig) -> None:
    """The post looked up was pushed out of the newest page by later posts: the look-up
    still finds it, and proves a never-published text absent only after paging everything."""
    rig = busy_rig
    target = good_content(rig.sim, rig.platform)
    request = rig.request(target)  # since: before the target was published
    published = await rig.connector.publish(request)
    for _ in range(BUSY[rig.platform]):
        await rig.connector.publish(rig.request(good_content(rig.sim, rig.platform)))
    assert len(rig.posts()) == BUSY[rig.platform] + 1

    metered: list[dict[str, int]] = []

    async def meter(usage):
        metered.append(dict(usage))

    found = await rig.connector.find(replace(request, attempt=2, meter=meter))
    assert found is not None
    assert found.external_id == published.external_id
    assert listing_calls(rig) == 2  # the newest page, then the one holding the target
    # The first page was reserved with the job; the second asked the limiter first.
    assert metered == PAGE_USAGE[rig.platform]

    never = replace(request, content=good_content(rig.sim, rig.platform), attempt=2)
    assert await rig.connector.find(never) is None
    assert listing_calls(rig) == 4  # both pages again: absent only once all were seen
    assert rig.sim.audit.violations() == []


@pytest.mark.parametrize(
    "platform", [Platform.FACEBOOK, Platform.LINKEDIN], ids=["facebook", "linkedin"]
)
async def test_repeat_is_refused_as_a_duplicate(make_rig: RigFactory, platform: Platform) -> None:
    rig: Rig = make_rig(platform)
    content = good_content(rig.sim, platform)
    published = await rig.connector.publish(rig.request(content))
    with pytest.raises(DuplicateRejected):
        await rig.connector.publish(rig.request(content, attempt=2))
    (post,) = rig.posts()
    assert post.post_id == published.external_id
    assert rig.sim.audit.summary()["duplicates_refused"] == 1
    found = await rig.connector.find(rig.request(content, attempt=3))
    assert found is not None
    assert found.external_id == published.external_id
