"""What Facebook and Instagram share: the Graph API's URL shape, tokens, parameters and
error envelope, the Graph way of throttling, and edge listings with cursor paging.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

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
from herald.simulator.pipeline import Reply, identify
from herald.simulator.wire import (
    bearer_token,
    decode_position,
    encode_position,
    int_param,
    read_json_object,
)

__all__ = [
    "VERSION",
    "GraphFaultAnswers",
    "app_usage",
    "authenticate",
    "buc_usage",
    "catch_all",
    "graph_bool",
    "graph_error",
    "graph_listing",
    "graph_params",
    "not_found",
    "require_node",
    "throttled",
]

#: Any Graph version prefix, as the real host accepts every live version.
VERSION = r"/{version:v\d+\.\d+}"


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

_THROTTLE_MESSAGES: dict[int, str] = {
    GraphCode.TOO_MANY_CALLS: "(#4) Application request limit reached",
    GraphCode.USER_TOO_MANY_CALLS: "(#17) User request limit reached",
    GraphCode.PAGE_TOO_MANY_CALLS: "(#32) Page request limit reached",
    GraphCode.APP_LIMIT_REACHED: "(#341) Application limit reached",
    GraphCode.RATE_LIMIT_EXCEEDED: "(#613) Calls to this api have exceeded the rate limit.",
    GraphCode.PAGE_ACCOUNT_TOO_MANY_CALLS: "(#80001) There have been too many calls to this "
    "Page account. Wait a bit and try again.",
}
LISTING_DEFAULT_LIMIT = 25
LISTING_MAX_LIMIT = 100

Item = TypeVar("Item")


def graph_error(
    status: int,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    transient: bool | None = None,
    user_title: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient is not None:
        error["is_transient"] = transient
    if user_title is not None:
        error["error_user_title"] = user_title
    error["fbtrace_id"] = secrets.token_urlsafe(9)
    return web.json_response({"error": error}, status=status, headers=headers)


def throttled(code: int, headers: dict[str, str]) -> web.Response:
    """A Graph throttle: HTTP 400 with the limit's code, and the usage headers that go with it."""
    message = _THROTTLE_MESSAGES.get(code, f"(#{code}) Request limit reached")
    return graph_error(400, code, message, headers=headers)


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


def graph_bool(value: Any, default: bool) -> bool | None:
    """Graph booleans arrive as JSON booleans or as strings; ``None`` if neither."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return None


async def graph_params(request: web.Request) -> dict[str, Any]:
    """Query, JSON body or form body, merged as Graph does; the token is not a parameter."""
    params: dict[str, Any] = dict(request.query)
    if request.body_exists:
        if request.content_type in _FORM_TYPES:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        else:
            body = await read_json_object(request)
            if body is None:
                raise Reply(graph_error(400, 100, "(#100) The request body is not a JSON object"))
            params.update(body)
    params.pop("access_token", None)
    return params


def authenticate(request: web.Request, ctx: SimContext, platform: Platform) -> str:
    """The external id the token acts for; answers with Graph's code 190 family otherwise."""
    token = bearer_token(request) or request.query.get("access_token")
    check = ctx.accounts.check(platform, token)
    if check.ok and check.account is not None:
        identify(request, ctx, platform, check.account)
        return check.account
    if check.status is TokenStatus.MISSING:
        raise Reply(graph_error(400, 104, "An access token is required to request this resource."))
    if check.status is TokenStatus.REVOKED:
        raise Reply(
            graph_error(
                400,
                GraphCode.INVALID_TOKEN,
                "Error validating access token: The session has been invalidated because the "
                "user changed their password or Facebook has changed the session for security "
                "reasons.",
                subcode=460,
            )
        )
    if check.status is TokenStatus.EXPIRED:
        raise Reply(
            graph_error(
                400,
                GraphCode.INVALID_TOKEN,
                "Error validating access token: Session has expired.",
                subcode=463,
            )
        )
    raise Reply(
        graph_error(
            400, GraphCode.INVALID_TOKEN, "Invalid OAuth access token - Cannot parse access token"
        )
    )


def not_found(node: str) -> Reply:
    return Reply(
        graph_error(
            400,
            100,
            f"Unsupported request. Object with ID '{node}' does not exist, cannot be loaded due "
            "to missing permissions, or does not support this operation.",
            subcode=33,
        )
    )


def require_node(ctx: SimContext, platform: Platform, account: str, node: str) -> None:
    """The token must act for the node in the path (its own Page or IG user)."""
    if node == account:
        return
    if ctx.accounts.get(platform, node) is None:
        raise not_found(node)
    raise Reply(
        graph_error(
            403,
            GRAPH_PERMISSION_CODES.start,
            "(#200) The user hasn't authorized the application to perform this action",
        )
    )


#: Throttles that bind the whole app, so the answer carries the app's usage header too. Written
#: here apart from the connectors' own list on purpose: the simulator reads the Graph
#: documents independently, so that a code one side misfiles, the other does not.
_APP_THROTTLES = frozenset(
    {GraphCode.TOO_MANY_CALLS, GraphCode.USER_TOO_MANY_CALLS, GraphCode.APP_LIMIT_REACHED}
)


class GraphFaultAnswers:
    """Injected Graph faults: code 2 with HTTP 500, or a throttle with a BUC header."""

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
        headers = buc_usage(account, self._buc_type, 100, regain)
        if code in _APP_THROTTLES:
            headers.update(app_usage(100))
        return throttled(code, headers)


async def catch_all(request: web.Request) -> web.Response:
    """Unknown paths answer like Graph does, not with aiohttp's plain-text 404."""
    return graph_error(400, 100, f"Unsupported {request.method.lower()} request: {request.path}")


def _unix_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise Reply(graph_error(400, 100, f"(#100) param {name} must be a Unix timestamp"))
    return int(raw)


def _first_index(query: Mapping[str, str], size: int) -> int:
    """Where a newest-first page starts: the newest item, or just past the ``after`` cursor."""
    after = query.get("after")
    if after is None:
        return size - 1
    position = decode_position(after)
    if position is None or position >= size:
        raise Reply(graph_error(400, 100, "(#100) Invalid cursor: after"))
    return position - 1


def graph_listing(
    request: web.Request,
    items: Sequence[Item],
    created: Callable[[Item], float],
    render: Callable[[Item], dict[str, Any]],
    shown: Callable[[Item], bool] | None = None,
) -> dict[str, Any]:
    """One page of an edge listing, newest first, as Graph pages it; items ``shown`` says
    no of (not listed yet: :class:`~.config.ListingLag`) are left out.

    ``since`` and ``until`` (Unix seconds, inclusive) bound the creation time as listed
    (whole seconds), ``limit``
    (1-100, default 25) the page, ``after`` continues past a cursor. More results: a
    ``paging.next`` link (the same query plus ``after``); the last page has none. ``items``
    are in creation order on a clock that never runs backwards, so the walk stops at the
    first item older than ``since``.
    """
    query = request.query
    limit = int_param(query.get("limit"), LISTING_DEFAULT_LIMIT, low=1, high=LISTING_MAX_LIMIT)
    if limit is None:
        raise Reply(graph_error(400, 100, "(#100) param limit must be an integer from 1 to 100"))
    since, until = _unix_param(query, "since"), _unix_param(query, "until")
    picked: list[int] = []
    more = False
    for index in range(_first_index(query, len(items)), -1, -1):
        if shown is not None and not shown(items[index]):
            continue
        at = int(created(items[index]))  # the second that created_time shows
        if since is not None and at < since:
            break
        if until is not None and at > until:
            continue
        if len(picked) == limit:
            more = True
            break
        picked.append(index)
    paging: dict[str, Any] = {}
    if picked:
        after = encode_position(picked[-1])
        paging["cursors"] = {"before": encode_position(picked[0]), "after": after}
        if more:
            paging["next"] = str(request.url.update_query(after=after))
    return {"data": [render(items[i]) for i in picked], "paging": paging}
