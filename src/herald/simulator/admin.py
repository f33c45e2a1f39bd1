"""The admin HTTP API: the in-process API of :class:`~.server.Simulator`, over JSON, for a
simulator running in its own process (see :class:`~.client.SimulatorClient`).

    GET  /_sim/health                                  {"ok": true}
    GET  /_sim/urls                                    SimulatorUrls
    GET  /_sim/settings-overrides                      nested dict for Herald's Settings
    GET  /_sim/config                                  SimulatorConfig
    POST /_sim/accounts            {platform, name?}   201 account
    GET  /_sim/accounts?platform=                      {"accounts": [...]}
    POST /_sim/accounts/{platform}/{id}/revoke         204
    POST /_sim/accounts/{platform}/{id}/reauthorize    {"credentials": {...}}
    GET  /_sim/faults                                  {platform: FaultConfig}
    PUT  /_sim/faults              {platform, faults}  FaultConfig
    GET  /_sim/platforms                               {platform: {"down": bool}}
    POST /_sim/platforms/{platform}/down {seconds?}    {"down": true}  (back after seconds)
    POST /_sim/platforms/{platform}/up                 {"down": false}
    GET  /_sim/audit?posts=&violations=&refusals=      {"summary", "posts", "violations",
                                                        "refusals"}
    GET  /_sim/audit/requests?platform=&account=       {"requests": [...]}
    POST /_sim/audit/reset                             204
    GET  /_sim/media-url?kind=&name=&bytes=            {"url"}
    GET  /media/<kind>/<name>?bytes=                   the media file (see :mod:`.media`)
    POST /_sim/clock/advance       {seconds}           {"now"}
    GET  /_sim/engagement/{platform}/{id}/truth?week_of=&content=&length=
                                                       {"zone", "hours": [168], "audience"}
    GET  /_sim/engagement/{platform}/posts/{post_id}?age_s=
                                                       {"expected", "post"}

The engagement routes hand the ground truth to evaluation tooling; the platforms' own ports
never show it.

Errors: 400 ``{"error"}`` for bad input, 404 for an unknown account.

Media files are served here, on a host of their own as a CDN would be: taking a platform down
leaves the files its posts link to within reach.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from herald.domain import Platform
from herald.simulator.accounts import UnknownAccount
from herald.simulator.config import FaultConfig
from herald.simulator.media import MEDIA_PREFIX, serve_media
from herald.simulator.wire import read_json_object

if TYPE_CHECKING:
    from herald.simulator.server import Simulator

__all__ = ["build_admin_app"]

_SIM: web.AppKey[Simulator] = web.AppKey("herald_simulator")
_routes = web.RouteTableDef()
_ACCOUNT = "/_sim/accounts/{platform}/{external_id}"


def build_admin_app(sim: Simulator) -> web.Application:
    app = web.Application(middlewares=[_unknown_account])
    app[_SIM] = sim
    app.add_routes(_routes)
    app.router.add_get(MEDIA_PREFIX + "{path:.+}", serve_media)
    return app


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _unknown_account(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except UnknownAccount as exc:
        return _error(404, str(exc))


def _platform(raw: Any) -> Platform:
    try:
        return Platform(raw)
    except ValueError:
        raise _bad_request(f"unknown platform {raw!r}") from None


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json_object(request)
    if body is None:
        raise _bad_request("a JSON object is required")
    return body


def _account_path(request: web.Request) -> tuple[Platform, str]:
    return _platform(request.match_info["platform"]), request.match_info["external_id"]


@_routes.get("/_sim/health")
async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@_routes.get("/_sim/urls")
async def _urls(request: web.Request) -> web.Response:
    return web.json_response(request.app[_SIM].urls.model_dump())


@_routes.get("/_sim/settings-overrides")
async def _overrides(request: web.Request) -> web.Response:
    return web.json_response(request.app[_SIM].settings_overrides())


@_routes.get("/_sim/config")
async def _config(request: web.Request) -> web.Response:
    return web.json_response(request.app[_SIM].config.model_dump(mode="json"))


@_routes.post("/_sim/accounts")
async def _add_account(request: web.Request) -> web.Response:
    body = await _body(request)
    name = body.get("name")
    account = request.app[_SIM].add_account(_platform(body.get("platform")), name or None)
    return web.json_response(account.to_dict(), status=201)


@_routes.get("/_sim/accounts")
async def _list_accounts(request: web.Request) -> web.Response:
    raw = request.query.get("platform")
    accounts = request.app[_SIM].accounts(None if raw is None else _platform(raw))
    return web.json_response({"accounts": [a.to_dict() for a in accounts]})


@_routes.post(_ACCOUNT + "/revoke")
async def _revoke(request: web.Request) -> web.Response:
    request.app[_SIM].revoke(*_account_path(request))
    return web.Response(status=204)


@_routes.post(_ACCOUNT + "/reauthorize")
async def _reauthorize(request: web.Request) -> web.Response:
    credentials = request.app[_SIM].reauthorize(*_account_path(request))
    return web.json_response({"credentials": credentials})


@_routes.get("/_sim/faults")
async def _get_faults(request: web.Request) -> web.Response:
    sim = request.app[_SIM]
    return web.json_response({p.value: sim.faults(p).model_dump(mode="json") for p in Platform})


@_routes.put("/_sim/faults")
async def _put_faults(request: web.Request) -> web.Response:
    body = await _body(request)
    platform = _platform(body.get("platform"))
    try:
        faults = FaultConfig.model_validate(body.get("faults", {}))
    except ValidationError as exc:
        return _error(400, str(exc))
    request.app[_SIM].set_faults(platform, faults)
    return web.json_response(faults.model_dump(mode="json"))


@_routes.get("/_sim/platforms")
async def _platforms(request: web.Request) -> web.Response:
    sim = request.app[_SIM]
    return web.json_response({p.value: {"down": sim.is_down(p)} for p in Platform})


@_routes.post("/_sim/platforms/{platform}/down")
async def _take_down(request: web.Request) -> web.Response:
    platform = _platform(request.match_info["platform"])
    seconds = (await read_json_object(request) or {}).get("seconds")
    if seconds is not None and (not isinstance(seconds, int | float) or seconds < 0):
        return _error(400, "seconds must be a number >= 0")
    await request.app[_SIM].take_down(platform, for_s=seconds)
    return web.json_response({"down": True})


@_routes.post("/_sim/platforms/{platform}/up")
async def _bring_up(request: web.Request) -> web.Response:
    platform = _platform(request.match_info["platform"])
    await request.app[_SIM].bring_up(platform)
    return web.json_response({"down": False})


@_routes.get("/_sim/audit")
async def _audit(request: web.Request) -> web.Response:
    audit = request.app[_SIM].audit
    out: dict[str, Any] = {"summary": audit.summary()}
    # The post list can be long after a benchmark: callers that only want totals skip it.
    if request.query.get("posts", "true") != "false":
        out["posts"] = [p.to_dict() for p in audit.posts()]
    if request.query.get("violations", "true") != "false":
        out["violations"] = [v.to_dict() for v in audit.violations()]
    if request.query.get("refusals", "true") != "false":
        out["refusals"] = [r.to_dict() for r in audit.refusals()]
    return web.json_response(out)


@_routes.get("/_sim/audit/requests")
async def _requests(request: web.Request) -> web.Response:
    raw = request.query.get("platform")
    platform = None if raw is None else _platform(raw)
    records = request.app[_SIM].audit.requests(platform, request.query.get("account"))
    return web.json_response({"requests": [r.to_dict() for r in records]})


@_routes.post("/_sim/audit/reset")
async def _reset_audit(request: web.Request) -> web.Response:
    request.app[_SIM].audit.reset()
    return web.Response(status=204)


@_routes.get("/_sim/media-url")
async def _media_url(request: web.Request) -> web.Response:
    query = request.query
    size_raw = query.get("bytes")
    if not query.get("name") or (size_raw is not None and not size_raw.isdigit()):
        return _error(400, "name is required and bytes must be an integer")
    try:
        url = request.app[_SIM].media_url(
            query.get("kind", "image"),
            query["name"],
            size=None if size_raw is None else int(size_raw),
        )
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"url": url})


@_routes.get("/_sim/engagement/{platform}/{external_id}/truth")
async def _truth(request: web.Request) -> web.Response:
    sim = request.app[_SIM]
    platform, external_id = _account_path(request)
    account = next((a for a in sim.accounts(platform) if a.external_id == external_id), None)
    if account is None:
        raise UnknownAccount(platform, external_id)
    query = request.query
    try:
        week_of = float(query["week_of"]) if "week_of" in query else None
        length = int(query["length"]) if "length" in query else None
        hours = sim.engagement_truth(
            account, week_of=week_of, content=query.get("content"), length=length
        )
    except ValueError as exc:
        return _error(400, str(exc))
    audience = sim.audience(account)
    return web.json_response(
        {
            "zone": str(audience.zone),
            "hours": hours,
            "audience": audience.spec.model_dump(mode="json"),
        }
    )


@_routes.get("/_sim/engagement/{platform}/posts/{post_id}")
async def _post_truth(request: web.Request) -> web.Response:
    sim = request.app[_SIM]
    platform = _platform(request.match_info["platform"])
    post_id = request.match_info["post_id"]
    truth = sim.post_truth(platform, post_id)
    if truth is None:
        return _error(404, f"no published {platform.value} post {post_id!r}")
    raw_age = request.query.get("age_s")
    try:
        age_s = None if raw_age is None else float(raw_age)
    except ValueError:
        return _error(400, "age_s must be a number")
    post = {**asdict(truth), "platform": platform.value, "kind": truth.kind.value}
    expected = sim.expected_engagement(platform, post_id, age_s=age_s)
    return web.json_response({"expected": expected, "post": post})


@_routes.post("/_sim/clock/advance")
async def _advance_clock(request: web.Request) -> web.Response:
    seconds = (await _body(request)).get("seconds")
    if not isinstance(seconds, int | float) or seconds < 0:
        return _error(400, "seconds must be a number >= 0")
    return web.json_response({"now": request.app[_SIM].advance_clock(float(seconds))})
