"""The connectors against the platforms' documented answers (tests/wire/*/*.json).

Every error fixture goes through its connector's table (``classify``: how each connector
turns an error answer into a Herald error; YouTube's token endpoint has a table of its own)
and must come out as the Herald class the fixture names, with its scope and wait when the
fixture gives them. Every other response fixture is
served by a fake platform on the connector's real HTTP path (:mod:`tests.unit.wire_drive`)
and must make the publish or the look-up succeed with the documented id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.errors import (
    AuthExpired,
    ContentRejected,
    DuplicateRejected,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    TransientPlatformError,
)
from herald.platforms import facebook, google_auth, instagram, linkedin, youtube
from herald.platforms.answers import Classifier, ErrorAnswer
from herald.platforms.youtube import seconds_to_pacific_midnight
from herald.platforms.youtube_upload import next_offset
from tests.unit.test_platform_fakes import NOW, FakeApi
from tests.unit.wire_drive import DRIVERS, PAUSE, WORLD, requests_seen
from tests.wire.fixtures import Fixture, fill, load_all

CLASSIFY: dict[str, Classifier] = {
    "facebook": facebook.classify,
    "instagram": instagram.classify,
    "linkedin": linkedin.classify,
    "youtube": youtube.classify,
}
#: Calls whose refusals a connector reads through another table than its platform's.
CLASSIFY_CALL: dict[tuple[str, str, str], Classifier] = {
    ("youtube", "POST", "/token"): google_auth.classify_refresh,  # Google's OAuth endpoint
}
ERRORS: dict[str, type[PlatformError]] = {
    "rate_limited": RateLimited,
    "auth_expired": AuthExpired,
    "content_rejected": ContentRejected,
    "duplicate": DuplicateRejected,
    "transient": TransientPlatformError,
    "outcome_unknown": OutcomeUnknown,
    "media_not_ready": instagram.MediaNotReady,
}
UTC_MIDNIGHT_S = 7 * 3600.0  # NOW is 17:00 UTC
WAITS = {"utc_midnight": UTC_MIDNIGHT_S, "pacific_midnight": seconds_to_pacific_midnight(NOW)}

ALL = load_all()
ERROR_FIXTURES = [pytest.param(f, id=f.id) for f in ALL if f.expect in ERRORS]
FLOW_FIXTURES = [pytest.param(f, id=f.id) for f in ALL if f.expect in ("published", "listed")]
RESUME_FIXTURES = [pytest.param(f, id=f.id) for f in ALL if f.expect == "resume"]


def classify(fixture: Fixture) -> PlatformError:
    resp = fixture.response
    answer = ErrorAnswer(
        resp.status,
        fill(dict(resp.headers), WORLD),
        json.dumps(fill(resp.body, WORLD)).encode() if resp.has_body else b"",
        now=NOW,
        pause_s=PAUSE,
        creates_post=fixture.creates_post,
        channel_id=WORLD["{page-id}"],
    )
    call = (fixture.platform, fixture.request.method, fixture.request.path)
    return CLASSIFY_CALL.get(call, CLASSIFY[fixture.platform])(answer)


def check_throttle(err: RateLimited, detail: dict[str, Any]) -> None:
    if "scope" in detail:
        assert err.scope == detail["scope"]
    if "retry_after" in detail:
        wait = detail["retry_after"]
        assert err.retry_after == pytest.approx(WAITS.get(wait, wait))
        assert err.named
    if detail.get("named") is False:
        # The answer names no wait: the configured pause, which the engine lengthens.
        assert (err.retry_after, err.named) == (PAUSE, False)


@pytest.mark.parametrize("fixture", ERROR_FIXTURES)
def test_every_documented_error_is_classified(fixture: Fixture) -> None:
    err = classify(fixture)
    assert type(err) is ERRORS[str(fixture.expect)], f"{fixture.id}: {err!r}"
    assert err.platform == fixture.platform
    if isinstance(err, RateLimited):
        check_throttle(err, dict(fixture.expect_detail))


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with FakeApi() as fake:
        yield fake


@pytest.mark.parametrize("fixture", FLOW_FIXTURES)
async def test_every_documented_success_is_understood(fixture: Fixture, api: FakeApi) -> None:
    result = await DRIVERS[fixture.platform](api, fixture)
    assert result is not None, requests_seen(api)
    req = fixture.request
    calls = api.calls(req.method)
    wanted = fill(req.path, WORLD)
    # The documented call was made (Graph paths sit under the version prefix).
    assert any(seen.path.endswith(wanted) for seen in calls), requests_seen(api)
    detail = fill(dict(fixture.expect_detail), WORLD)
    if "id" in detail:
        assert result.external_id == detail["id"]
    if "playlistId" in detail:
        assert (
            api.calls("GET", "/youtube/v3/playlistItems")[0].query["playlistId"]
            == detail["playlistId"]
        )


@pytest.mark.parametrize("fixture", RESUME_FIXTURES)
def test_a_documented_incomplete_upload_resumes_where_it_says(fixture: Fixture) -> None:
    assert next_offset(fixture.response.headers) == fixture.expect_detail["next_offset"]


def test_every_response_fixture_is_covered() -> None:
    """Only fixtures of calls the connectors never make are left out (a simulator check)."""
    covered = {f.values[0].id for f in ERROR_FIXTURES + FLOW_FIXTURES + RESUME_FIXTURES}
    left = {f.id for f in ALL} - covered
    assert left == {f.id for f in ALL if f.expect is None}
