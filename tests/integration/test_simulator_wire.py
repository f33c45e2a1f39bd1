"""The simulator against the platforms' documented answers (tests/wire/*/*.json).

For every fixture with a request, the simulator is put into the fixture's situation
(:mod:`tests.integration.wire_world`), sent the documented request, and its answer must
have the documented status, the documented body's shape (same keys, same value types;
ids and texts may differ) and the documented headers, in their format. A situation the
simulator cannot reach is a strict expected failure: once the simulator learns it, the
mark must go.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from herald.simulator import Simulator
from tests.integration.wire_world import UNREACHABLE, World, config_for, prepare
from tests.wire.fixtures import Fixture, fill, load_all, placeholders
from tests.wire.shape import answer_diff

FORM = "application/x-www-form-urlencoded"


def _param(fixture: Fixture) -> Any:
    reason = UNREACHABLE.get(fixture.situation)
    marks = (
        [pytest.mark.xfail(strict=True, reason=f"simulator differs: {reason}")] if reason else []
    )
    return pytest.param(fixture, id=fixture.id, marks=marks)


FIXTURES = [_param(fixture) for fixture in load_all()]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _request_args(world: World, fixture: Fixture) -> dict[str, Any]:
    req = fixture.request
    headers = {**world.auth(), **fill(dict(req.headers), world.values)}
    args: dict[str, Any] = {"params": fill(dict(req.query), world.values), "headers": headers}
    if isinstance(req.body, dict) and set(req.body) == {"bytes"}:
        args["data"] = b"\0" * req.body["bytes"]
    elif req.headers.get("Content-Type") == FORM:
        args["data"] = fill(req.body, world.values)  # a form, encoded as the header says
    elif req.body is not None:
        args["json"] = fill(req.body, world.values)
    return args


async def answer(world: World, fixture: Fixture) -> tuple[int, dict[str, str], Any]:
    """The simulator's answer to the fixture's request: status, headers, JSON body."""
    path = fill(fixture.request.path, world.values)
    unfilled = set(placeholders(path)) | set(placeholders(fixture.request.query))
    assert not unfilled - world.values.keys(), f"no value for {unfilled}"
    async with world.http.request(
        fixture.request.method, f"{world.base}{path}", **_request_args(world, fixture)
    ) as resp:
        raw = await resp.read()
        body = await resp.json(content_type=None) if raw else None
        return resp.status, dict(resp.headers), body


@pytest.mark.parametrize("fixture", FIXTURES)
async def test_the_simulator_answers_as_documented(
    fixture: Fixture, http: aiohttp.ClientSession
) -> None:
    async with Simulator(config_for(fixture)) as sim:
        world = await prepare(sim, http, fixture)
        status, headers, body = await answer(world, fixture)
    assert answer_diff(fixture, status, headers, body) == [], (status, body)
