"""What Facebook and Instagram share: the Graph API's URL shape, tokens, parameters and
error envelope, the Graph way of throttling, and edge listings with cursor paging.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from aiohttp import web

from herald.constants import (
    GRAPH_PERMISSION_CODES,
    GRAPH_REGAIN_FIELD,
    GRAPH_USAGE_FIELDS,
    GraphCode,
    GraphHeader,
)
from herald.domain import Platform
from herald.simulator.accounts import TokenStatus
from herald.simulator.context import SimContext
from herald.simulator.graph_params import parse_params, request_token
from herald.simulator.pipeline import Reply, identify

__all__ = [
    "VERSION",
    "GraphFaultAnswers",
    "app_usage",
    "authenticate",
    "buc_usage",
    "catch_all",
    "enter",
    "graph_error",
    "graph_params",
    "not_found",
    "require_node",
    "throttled",
]

#: Any Graph version prefix, as the real host accepts every live version.
VERSION = r"/{version:v\d+\.\d+}"


_THROTTLE_MESSAGES: dict[int, str] = {
    GraphCode.TOO_MANY_CALLS: "(#4) Application request limit reached",
    GraphCode.USER_TOO_MANY_CALLS: "(#17) User request limit reached",
    GraphCode.PAGE_TOO_MANY_CALLS: "(#32) Page request limit reached",
    GraphCode.APP_LIMIT_REACHED: "(#341) Application limit reached",
    GraphCode.RATE_LIMIT_EXCEEDED: "(#613) Calls to this api have exceeded the rate limit.",
    GraphCode.PAGE_ACCOUNT_TOO_MANY_CALLS: "(#80001) There have been too many calls to this "
    "Page account. Wait a bit and try again.",
    GraphCode.INSTAGRAM_ACCOUNT_TOO_MANY_CALLS: "(#80002) There have been too many calls to "
    "this Instagram account. Wait a bit and try again.",
}
#: Graph's ``WWW-Authenticate`` on a refused token: ``OAuth "Facebook Platform" "<error>"
#: "<message>"``, as Graph answers (seen in client logs; docs/platforms.md).
_CHALLENGE = 'OAuth "Facebook Platform" "{error}" "{message}"'


def graph_error(
    status: int,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    transient: bool | None = None,
    user_title: str | None = None,
    headers: dict[str, str] | None = None,
    kind: str = "OAuthException",
) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    if user_title is not None:
        error["error_user_title"] = user_title
    error["fbtrace_id"] = secrets.token_urlsafe(9)
    return web.json_response({"error": error}, status=status, headers=headers)


def throttled(code: int, headers: dict[str, str]) -> web.Response:
    """A Graph throttle: HTTP 400 with the limit's code, ``is_transient: true`` (the wait
    ends on its own), and the usage headers that go with it."""
    message = _THROTTLE_MESSAGES.get(code, f"(#{code}) Request limit reached")
    return graph_error(400, code, message, transient=True, headers=headers)


def _usage(percent: int) -> dict[str, int]:
    # The simulator meters calls only; CPU and time shares follow the call share so that a
    # client reading any of the three sees the same story.
    return dict.fromkeys(GRAPH_USAGE_FIELDS, percent)


def app_usage(percent: int) -> dict[str, str]:
    """The app's usage header at ``percent`` of its limit."""
    return {GraphHeader.APP_USAGE: json.dumps(_usage(percent))}


def buc_usage(node: str, kind: str, percent: int, regain_minutes: int) -> dict[str, str]:
    """The Business Use Case usage header of one Page or account."""
    entry = {"type": kind, **_usage(percent), GRAPH_REGAIN_FIELD: regain_minutes}
    return {GraphHeader.BUSINESS_USE_CASE_USAGE: json.dumps({node: [entry]})}


async def graph_params(request: web.Request) -> dict[str, Any]:
    """Query, form body or JSON body, merged as Graph does (:mod:`.graph_params`); a body
    that is neither a form nor a JSON object is refused with code 100."""
    parsed = await parse_params(request)
    if parsed.problem is not None:
        raise Reply(graph_error(400, 100, parsed.problem))
    return parsed.values


async def enter(request: web.Request, ctx: SimContext, platform: Platform) -> str:
    """Read the parameters (a POST body may carry the token), then :func:`authenticate`."""
    await parse_params(request)
    return authenticate(request, ctx, platform)


def _token_refused(message: str, subcode: int | None = None) -> Reply:
    challenge = _CHALLENGE.format(error="invalid_token", message=message)
    return Reply(
        graph_error(
            400,
            GraphCode.INVALID_TOKEN,
            message,
            subcode=subcode,
            headers={"WWW-Authenticate": challenge},
        )
    )


def authenticate(request: web.Request, ctx: SimContext, platform: Platform) -> str:
    """The external id the token acts for; answers with Graph's code 190 family otherwise
    (with ``WWW-Authenticate``). A token in a POST body counts once :func:`enter` has read
    the body."""
    check = ctx.accounts.check(platform, request_token(request))
    if check.ok and check.account is not None:
        identify(request, ctx, platform, check.account)
        return check.account
    if check.status is TokenStatus.MISSING:
        raise Reply(graph_error(400, 104, "An access token is required to request this resource."))
    if check.status is TokenStatus.REVOKED:
        raise _token_refused(
            "Error validating access token: The session has been invalidated because the user "
            "changed their password or Facebook has changed the session for security reasons.",
            460,
        )
    if check.status is TokenStatus.EXPIRED:
        raise _token_refused("Error validating access token: Session has expired.", 463)
    raise _token_refused("Invalid OAuth access token - Cannot parse access token")


def not_found(node: str, method: str = "GET") -> Reply:
    """Graph's answer for a node that does not exist or that the token may not see: a
    ``GraphMethodException``, code 100, subcode 33, naming the method."""
    return Reply(
        graph_error(
            400,
            100,
            f"Unsupported {method.lower()} request. Object with ID '{node}' does not exist, "
            "cannot be loaded due to missing permissions, or does not support this operation. "
            "Please read the Graph API documentation at "
            "https://developers.facebook.com/docs/graph-api",
            subcode=33,
            kind="GraphMethodException",
        )
    )


def require_node(request: web.Request, ctx: SimContext, platform: Platform, account: str) -> str:
    """The node in the path, which the token must act for (its own Page or IG user)."""
    node = request.match_info["node"]
    if node == account:
        return node
    if ctx.accounts.get(platform, node) is None:
        raise not_found(node, request.method)
    raise Reply(
        graph_error(
            403,
            GRAPH_PERMISSION_CODES.start,
            "(#200) The user hasn't authorized the application to perform this action",
        )
    )


#: Throttles that bind the whole app, so the answer carries the app's usage header instead of
#: the Page's or account's. Written here apart from the connectors' own list on purpose: the
#: simulator reads the Graph documents independently, so that a code one side misfiles, the
#: other does not.
_APP_THROTTLES = frozenset(
    {GraphCode.TOO_MANY_CALLS, GraphCode.USER_TOO_MANY_CALLS, GraphCode.APP_LIMIT_REACHED}
)


class GraphFaultAnswers:
    """Injected Graph faults: code 2 with HTTP 500, or a throttle with the usage header of
    the limit it names (BUC for a Page or account, ``X-App-Usage`` for the app)."""

    def __init__(self, ctx: SimContext, platform: Platform, buc_type: str) -> None:
        self._ctx = ctx
        self._platform = platform
        self._buc_type = buc_type

    def transient(self, account: str) -> web.StreamResponse:
        return graph_error(
            500,
            GraphCode.SERVICE_ERROR,
            "An unexpected error has occurred. Please retry your request later.",
            transient=True,
        )

    def throttle(self, account: str) -> web.StreamResponse:
        code = self._ctx.dice.graph_throttle_code(self._platform)
        regain = self._ctx.dice.faults(self._platform).regain_minutes
        if code in _APP_THROTTLES:
            return throttled(code, app_usage(100))
        return throttled(code, buc_usage(account, self._buc_type, 100, regain))


async def catch_all(request: web.Request) -> web.Response:
    """Unknown paths answer like Graph does, not with aiohttp's plain-text 404."""
    return graph_error(400, 100, f"Unsupported {request.method.lower()} request: {request.path}")
