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
    GET  /_sim/audit?posts=&violations=                {"summary", "posts", "violations"}
    GET  /_sim/audit/requests?platform=&account=       {"requests": [...]}
    POST /_sim/audit/reset                             204
    GET  /_sim/media-url?kind=&name=&bytes=            {"url"}
    POST /_sim/clock/advance       {seconds}           {"now"}

Errors: 400 ``{"error"}`` for bad input, 404 for an unknown account.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from herald.domain import Platform
from herald.simulator.accounts import UnknownAccount
from herald.simulator.config import FaultConfig
from herald.simulator.wire import read_json_object

if TYPE_CHECKING:
    from herald.simulator.server import Simulator

__all__ = ["build_admin_app"]


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


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


class _Admin:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def urls(self, request: web.Request) -> web.Response:
        return web.json_response(self._sim.urls.model_dump())

    async def overrides(self, request: web.Request) -> web.Response:
        return web.json_response(self._sim.settings_overrides())

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(self._sim.config.model_dump(mode="json"))

    async def add_account(self, request: web.Request) -> web.Response:
        body = await _body(request)
        name = body.get("name")
        account = self._sim.add_account(_platform(body.get("platform")), name or None)
        return web.json_response(account.to_dict(), status=201)

    async def list_accounts(self, request: web.Request) -> web.Response:
        raw = request.query.get("platform")
        accounts = self._sim.accounts(None if raw is None else _platform(raw))
        return web.json_response({"accounts": [a.to_dict() for a in accounts]})

    async def revoke(self, request: web.Request) -> web.Response:
        platform, external_id = self._account_path(request)
        try:
            self._sim.revoke(platform, external_id)
        except UnknownAccount as exc:
            return _error(404, str(exc))
        return web.Response(status=204)

    async def reauthorize(self, request: web.Request) -> web.Response:
        platform, external_id = self._account_path(request)
        try:
            credentials = self._sim.reauthorize(platform, external_id)
        except UnknownAccount as exc:
            return _error(404, str(exc))
        return web.json_response({"credentials": credentials})

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(
            {p.value: self._sim.faults(p).model_dump(mode="json") for p in Platform}
        )

    async def put_faults(self, request: web.Request) -> web.Response:
        body = await _body(request)
        platform = _platform(body.get("platform"))
        try:
            faults = FaultConfig.model_validate(body.get("faults", {}))
        except ValidationError as exc:
            return _error(400, str(exc))
        self._sim.set_faults(platform, faults)
        return web.json_response(faults.model_dump(mode="json"))

    async def audit(self, request: web.Request) -> web.Response:
        audit = self._sim.audit
        out: dict[str, Any] = {"summary": audit.summary()}
        # The post list can be long after a benchmark: callers that only want totals skip it.
        if request.query.get("posts", "true") != "false":
            out["posts"] = [p.to_dict() for p in audit.posts()]
        if request.query.get("violations", "true") != "false":
            out["violations"] = [v.to_dict() for v in audit.violations()]
        return web.json_response(out)

    async def requests(self, request: web.Request) -> web.Response:
        raw = request.query.get("platform")
        platform = None if raw is None else _platform(raw)
        records = self._sim.audit.requests(platform, request.query.get("account"))
        return web.json_response({"requests": [r.to_dict() for r in records]})

    async def reset_audit(self, request: web.Request) -> web.Response:
        self._sim.audit.reset()
        return web.Response(status=204)

    async def media_url(self, request: web.Request) -> web.Response:
        query = request.query
        size_raw = query.get("bytes")
        if not query.get("name") or (size_raw is not None and not size_raw.isdigit()):
            return _error(400, "name is required and bytes must be an integer")
        try:
            url = self._sim.media_url(
                query.get("kind", "image"),
                query["name"],
                size=None if size_raw is None else int(size_raw),
            )
        except ValueError as exc:
            return _error(400, str(exc))
        return web.json_response({"url": url})

    async def advance_clock(self, request: web.Request) -> web.Response:
        seconds = (await _body(request)).get("seconds")
        if not isinstance(seconds, int | float) or seconds < 0:
            return _error(400, "seconds must be a number >= 0")
        return web.json_response({"now": self._sim.advance_clock(float(seconds))})

    @staticmethod
    def _account_path(request: web.Request) -> tuple[Platform, str]:
        return _platform(request.match_info["platform"]), request.match_info["external_id"]


def build_admin_app(sim: Simulator) -> web.Application:
    admin = _Admin(sim)
    account = "/_sim/accounts/{platform}/{external_id}"
    app = web.Application()
    app.add_routes(
        [
            web.get("/_sim/health", admin.health),
            web.get("/_sim/urls", admin.urls),
            web.get("/_sim/settings-overrides", admin.overrides),
            web.get("/_sim/config", admin.config),
            web.post("/_sim/accounts", admin.add_account),
            web.get("/_sim/accounts", admin.list_accounts),
            web.post(account + "/revoke", admin.revoke),
            web.post(account + "/reauthorize", admin.reauthorize),
            web.get("/_sim/faults", admin.get_faults),
            web.put("/_sim/faults", admin.put_faults),
            web.get("/_sim/audit", admin.audit),
            web.get("/_sim/audit/requests", admin.requests),
            web.post("/_sim/audit/reset", admin.reset_audit),
            web.get("/_sim/media-url", admin.media_url),
            web.post("/_sim/clock/advance", admin.advance_clock),
        ]
    )
    return app
