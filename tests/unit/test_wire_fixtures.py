"""The wire fixtures themselves (tests/wire): their format, and the shape check that judges
the simulator against them, which must catch a changed status, key, type or header."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.wire.fixtures import EXPECTATIONS, PLATFORMS, Fixture, load_all
from tests.wire.shape import answer_diff, body_diff, header_diff

ALL = load_all()
PARAMS = [pytest.param(f, id=f.id) for f in ALL]


@pytest.mark.parametrize("fixture", PARAMS)
def test_a_fixture_names_its_source_and_what_it_means(fixture: Fixture) -> None:
    assert fixture.platform in PLATFORMS
    assert fixture.path.parent.name == fixture.platform
    assert fixture.path.stem == fixture.name
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", fixture.retrieved)
    # A page, or the shared notes (then the fixture says it is not confirmed).
    assert fixture.source.startswith("https://") or not fixture.confirmed
    assert fixture.expect is None or fixture.expect in EXPECTATIONS
    assert fixture.request.method in ("GET", "POST", "PUT")
    assert 200 <= fixture.response.status < 600


#: What each connector tells apart (docs/platforms.md, each platform's table): the answers it
#: understands and every Herald error its table gives. A fixture per entry, and no fixture
#: expecting what its connector does not tell: a missing or a new entry fails here. Instagram
#: names no duplicate refusal (none is documented for it); YouTube has none at all.
CLASSES: dict[str, frozenset[str]] = {
    "facebook": frozenset(
        {"published", "listed", "rate_limited", "auth_expired", "content_rejected"}
        | {"duplicate", "transient", "outcome_unknown"}
    ),
    "instagram": frozenset(
        {"published", "listed", "rate_limited", "auth_expired", "content_rejected"}
        | {"transient", "outcome_unknown", "media_not_ready"}
    ),
    "linkedin": frozenset(
        {"published", "listed", "rate_limited", "auth_expired", "content_rejected"}
        | {"duplicate", "transient", "outcome_unknown"}
    ),
    "youtube": frozenset(
        {"published", "listed", "resume", "rate_limited", "auth_expired", "content_rejected"}
        | {"transient", "outcome_unknown"}
    ),
}
#: The waits each connector's throttles take: one the answer names (a regain estimate, a
#: fixed wait), the configured pause when it names none, or until the platform's midnight.
WAITS: dict[str, frozenset[str]] = {
    "facebook": frozenset({"named", "unnamed"}),
    "instagram": frozenset({"named", "unnamed"}),
    "linkedin": frozenset({"utc_midnight", "named", "unnamed"}),  # named: a sunset version
    "youtube": frozenset({"pacific_midnight", "named", "unnamed"}),
}
#: The headers each platform's throttles carry: a throttle fixture shows each. LinkedIn and
#: YouTube document none (no usage header, no Retry-After).
THROTTLE_HEADERS: dict[str, frozenset[str]] = {
    "facebook": frozenset({"X-Business-Use-Case-Usage", "X-App-Usage"}),
    "instagram": frozenset({"X-Business-Use-Case-Usage"}),
    "linkedin": frozenset(),
    "youtube": frozenset(),
}
#: Calls whose refusals go through a table of their own, and what the refusal means there.
OWN_TABLES: dict[str, dict[tuple[str, str], str]] = {
    "youtube": {("POST", "/token"): "auth_expired"},  # Google's token endpoint
}


def _wait(fixture: Fixture) -> str | None:
    detail = fixture.expect_detail
    if detail.get("named") is False:
        return "unnamed"
    wait = detail.get("retry_after")
    return wait if isinstance(wait, str) or wait is None else "named"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platform_has_the_minimum_set(platform: str) -> None:
    """A publish, a listing page, each class its connector tells, each wait its throttles
    take, a throttle with each header the platform sends, each call with a table of its own."""
    mine = [f for f in ALL if f.platform == platform]
    assert {f.expect for f in mine if f.expect is not None} == CLASSES[platform]
    throttles = [f for f in mine if f.expect == "rate_limited"]
    assert all(_wait(f) is not None for f in throttles), "a throttle fixture names its wait"
    assert {_wait(f) for f in throttles} == WAITS[platform]
    for name in THROTTLE_HEADERS[platform]:
        assert any(name in f.response.headers for f in throttles), name
    for (method, path), expect in OWN_TABLES.get(platform, {}).items():
        calls = [f for f in mine if (f.request.method, f.request.path) == (method, path)]
        assert any(f.expect == expect for f in calls), (method, path)


@pytest.mark.parametrize("fixture", PARAMS)
def test_the_documented_answer_agrees_with_itself(fixture: Fixture) -> None:
    resp = fixture.response
    assert answer_diff(fixture, resp.status, dict(resp.headers), resp.body) == []


def _with(fixture: Fixture, **changes: Any) -> tuple[int, dict[str, str], Any]:
    resp = fixture.response
    status = changes.get("status", resp.status)
    headers = changes.get("headers", dict(resp.headers))
    return status, headers, changes.get("body", copy.deepcopy(resp.body))


@pytest.mark.parametrize("fixture", PARAMS)
def test_another_status_is_caught(fixture: Fixture) -> None:
    status, headers, body = _with(fixture, status=fixture.response.status + 1)
    assert answer_diff(fixture, status, headers, body)


BODIES = [pytest.param(f, id=f.id) for f in ALL if isinstance(f.response.body, dict)]


@pytest.mark.parametrize("fixture", BODIES)
def test_a_renamed_key_is_caught(fixture: Fixture) -> None:
    body = copy.deepcopy(fixture.response.body)
    key = next(iter(body))
    body[f"{key}_renamed"] = body.pop(key)
    status, headers, _ = _with(fixture)
    assert answer_diff(fixture, status, headers, body)


def test_types_lists_optional_and_open_paths() -> None:
    assert body_diff({"id": "1"}, {"id": 1}) == ["id: string expected, number found"]
    assert body_diff({"a": [{"x": 1}]}, {"a": [{"x": 1}, {"y": 2}]}) != []
    assert body_diff({"a": [{"x": 1}]}, {"a": []}) == ["a: empty, the fixture lists items"]
    assert body_diff({"e": {"c": 1, "t": "x"}}, {"e": {"c": 1}}, optional={"e.t"}) == []
    assert body_diff({"s": {"a": 1}}, {"s": {"a": 2, "b": 3}}, open_paths={"s"}) == []
    assert body_diff({"s": {"a": 1}}, {"s": {"a": 2, "b": 3}}) == [
        "s.b: not in the documented answer"
    ]
    assert body_diff({"{page-id}": [{"n": 1}]}, {"123": [{"n": 5}]}) == []


def test_headers_by_presence_and_format() -> None:
    buc = json.dumps({"{page-id}": [{"type": "pages", "call_count": 100}]})
    assert (
        header_diff({"X-B": buc}, {"x-b": json.dumps({"1": [{"type": "pages", "call_count": 3}]})})
        == []
    )
    assert header_diff({"X-B": buc}, {}) == ["header X-B: missing"]
    assert header_diff({"Range": "bytes=0-524287"}, {"Range": "bytes=0-99"}) == []
    assert header_diff({"Range": "bytes=0-524287"}, {"Range": "0-99"}) != []
    loc = "https://h.example/upload?uploadType=resumable&upload_id=x"
    assert (
        header_diff(
            {"Location": loc}, {"Location": "http://127.0.0.1:1/upload?upload_id=y&uploadType=r"}
        )
        == []
    )
    assert header_diff({"Location": loc}, {"Location": "/upload?upload_id=y&uploadType=r"}) != []


def test_a_fixture_without_a_body_compares_none() -> None:
    li = next(f for f in ALL if f.id == "linkedin/error-version-sunset")
    assert answer_diff(li, 426, {}, {"anything": 1}) == []
    assert answer_diff(li, 400, {}, None) == ["status 400, documented 426"]


def test_fixture_files_are_json_with_a_newline() -> None:
    for path in Path(ALL[0].path).parent.parent.glob("*/*.json"):
        text = path.read_text()
        assert text.endswith("\n")
        assert json.loads(text)
