"""A Graph request's parameters as Graph reads them: the query string, then a form body
(``application/x-www-form-urlencoded`` or ``multipart/form-data``) or a JSON body.

The access token is a parameter like any other on Graph: the ``Authorization`` header, the
query string, or the body of a POST all carry it (docs/platforms.md). It is taken out of the
parameters, so no handler ever sees it as one.

A form has no nesting, so clients write arrays and objects the way PHP reads them, and Graph
reads them the same way: ``attached_media[0]={"media_fbid":"1"}``,
``attached_media[0][media_fbid]=1`` and ``children[]=1&children[]=2`` become a list of
objects or values. An element that is itself JSON text stays text; the edge that takes it
decodes it, as it does a whole JSON-encoded parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from herald.simulator.wire import bearer_token, read_json_object

__all__ = ["GraphParams", "form_values", "graph_bool", "parse_params", "request_token"]

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: ``name[a][b]``: the name, then each bracketed key (empty for ``[]``: the next index).
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_TOKEN = "access_token"


@dataclass(slots=True)
class GraphParams:
    """Every parameter of one request; ``token`` from the query or the body; ``problem``:
    why the body could not be read (answered after authentication, as Graph does)."""

    values: dict[str, Any] = field(default_factory=dict)
    token: str | None = None
    problem: str | None = None


_PARSED = web.RequestKey("herald_sim_graph_params", GraphParams)


def graph_bool(value: Any, default: bool) -> bool | None:
    """Graph booleans arrive as JSON booleans or as strings; ``None`` if neither."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    return None


def _place(target: dict[str, Any], name: str, value: str) -> None:
    """Put one form field where its bracketed name says."""
    match = _KEY.match(name)
    if match is None or not match.group(2):
        target[name] = value
        return
    keys = [match.group(1), *_PART.findall(match.group(2))]
    node = target
    for raw in keys[:-1]:  # every key but the last names an object
        key = raw or str(len(node))
        inner = node.get(key)
        if not isinstance(inner, dict):
            inner = node[key] = {}
        node = inner
    node[keys[-1] or str(len(node))] = value


def _as_lists(value: Any) -> Any:
    """Objects keyed 0, 1, 2... (``a[0]``, ``a[]``) as lists, in index order."""
    if not isinstance(value, dict):
        return value
    items = {key: _as_lists(inner) for key, inner in value.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def form_values(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """Form fields as Graph reads them: bracketed names nest, numbered ones make lists."""
    nested: dict[str, Any] = {}
    for name, value in fields:
        _place(nested, name, value)
    return {name: _as_lists(value) for name, value in nested.items()}


async def _body(request: web.Request, parsed: GraphParams) -> None:
    if request.content_type in _FORM_TYPES:
        form = await request.post()
        fields = [(k, v) for k, v in form.items() if isinstance(v, str)]
        parsed.values.update(form_values(fields))
        return
    body = await read_json_object(request)
    if body is None:
        parsed.problem = "(#100) The request body is not a JSON object"
        return
    parsed.values.update(body)


async def parse_params(request: web.Request) -> GraphParams:
    """The request's parameters, read once and kept on the request."""
    if _PARSED in request:
        return request[_PARSED]
    parsed = GraphParams(form_values(list(request.query.items())))
    if request.body_exists:
        await _body(request, parsed)
    token = parsed.values.pop(_TOKEN, None)
    parsed.token = token if isinstance(token, str) and token else None
    request[_PARSED] = parsed
    return parsed


def request_token(request: web.Request) -> str | None:
    """The token a request carries: its bearer header, else its query or body parameter
    (the body only once :func:`parse_params` has read it)."""
    token = bearer_token(request) or request.query.get(_TOKEN)
    if token:
        return token
    parsed = request.get(_PARSED)
    return parsed.token if parsed is not None else None
