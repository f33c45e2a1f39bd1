"""Comparing an answer with a fixture's: the same keys and value types, not the same values.

Ids, timestamps and texts differ from one world to the next; what a client depends on is the
shape. Paths name a place in a body: ``error.code``, ``data[]`` (every element of a list),
``items[].snippet``. A fixture's ``optional`` paths may be absent on either side (the
documentation marks the field as optional); its ``open`` paths are objects whose documented
keys must be there but which may carry more (the page shows only some of them).

Headers are compared by presence and format: a JSON header by shape, an absolute URL by its
path and query parameter names, anything else by its text with digit runs and placeholders
free.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from tests.wire.fixtures import Fixture

__all__ = ["answer_diff", "body_diff", "header_diff"]

_PLACEHOLDER_KEY = re.compile(r"^\{[a-z0-9-]+\}$")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "null"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def body_diff(
    expected: Any,
    actual: Any,
    *,
    optional: Collection[str] = (),
    open_paths: Collection[str] = (),
    path: str = "",
) -> list[str]:
    """Where ``actual`` differs in shape from ``expected``; empty when they agree."""
    if _kind(expected) != _kind(actual):
        return [f"{path or '<body>'}: {_kind(expected)} expected, {_kind(actual)} found"]
    if isinstance(expected, Mapping):
        return _object_diff(expected, actual, optional, open_paths, path)
    if isinstance(expected, list):
        if expected and not actual:
            return [f"{path or '<body>'}: empty, the fixture lists items"]
        item = f"{path}[]"
        return [
            problem
            for element in (actual if expected else [])
            for problem in body_diff(
                expected[0], element, optional=optional, open_paths=open_paths, path=item
            )
        ]
    return []


def _object_diff(
    expected: Mapping[str, Any],
    actual: Mapping[str, Any],
    optional: Collection[str],
    open_paths: Collection[str],
    path: str,
) -> list[str]:
    if len(expected) == 1 and _PLACEHOLDER_KEY.match(next(iter(expected))):
        # Keyed by an id (``{page-id}``): every key the answer has holds the documented value.
        (template,) = expected.values()
        if not actual:
            return [f"{path or '<body>'}: empty, the fixture has an entry"]
        key_path = _join(path, next(iter(expected)))
        return [
            problem
            for value in actual.values()
            for problem in body_diff(
                template, value, optional=optional, open_paths=open_paths, path=key_path
            )
        ]
    problems: list[str] = []
    for key in expected.keys() - actual.keys():
        if _join(path, key) not in optional:
            problems.append(f"{_join(path, key)}: missing")
    if path not in open_paths:
        for key in actual.keys() - expected.keys():
            if _join(path, key) not in optional:
                problems.append(f"{_join(path, key)}: not in the documented answer")
    for key in expected.keys() & actual.keys():
        problems += body_diff(
            expected[key],
            actual[key],
            optional=optional,
            open_paths=open_paths,
            path=_join(path, key),
        )
    return problems


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _format(value: str) -> re.Pattern[str]:
    """The text of ``value`` with its numbers and placeholders free."""
    parts = re.split(r"(\{[a-z0-9-]+\}|\d+)", value)
    pattern = "".join(
        ".+" if part.startswith("{") else r"\d+" if part.isdigit() else re.escape(part)
        for part in parts
        if part
    )
    return re.compile(f"^{pattern}$")


def _url_diff(name: str, expected: str, actual: str) -> list[str]:
    want, got = urlsplit(expected), urlsplit(actual)
    problems = []
    if not got.scheme or not got.netloc:
        problems.append(f"header {name}: {actual!r} is not an absolute URL")
    if want.path != got.path:
        problems.append(f"header {name}: path {got.path!r}, documented {want.path!r}")
    want_keys = {k for k, _ in parse_qsl(want.query)}
    got_keys = {k for k, _ in parse_qsl(got.query)}
    if want_keys != got_keys:
        problems.append(f"header {name}: query {sorted(got_keys)}, documented {sorted(want_keys)}")
    return problems


def header_diff(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """Where the documented headers are missing from ``actual`` or have another format."""
    problems: list[str] = []
    for name, value in expected.items():
        found = _header(actual, name)
        if found is None:
            problems.append(f"header {name}: missing")
        elif value.startswith(("http://", "https://")):
            problems += _url_diff(name, value, found)
        elif value.startswith(("{", "[")):
            try:
                parsed = json.loads(found)
            except ValueError:
                problems.append(f"header {name}: not JSON: {found!r}")
                continue
            problems += [f"header {name}: {p}" for p in body_diff(json.loads(value), parsed)]
        elif not _format(value).match(found):
            problems.append(f"header {name}: {found!r} is not of the form {value!r}")
    return problems


def answer_diff(fixture: Fixture, status: int, headers: Mapping[str, str], body: Any) -> list[str]:
    """Where an answer departs from the fixture's documented one: status, headers, body."""
    documented = fixture.response
    problems = []
    if status != documented.status:
        problems.append(f"status {status}, documented {documented.status}")
    problems += header_diff(documented.headers, headers)
    if documented.has_body:
        problems += body_diff(
            documented.body, body, optional=fixture.optional, open_paths=fixture.open
        )
    return problems
