"""Edge listings with cursor paging, as Graph pages them (developers.facebook.com/docs/
graph-api/results): newest first, ``paging.cursors`` ``before`` (the page's first item) and
``after`` (its last), a ``next`` link while older items remain and a ``previous`` link while
newer ones do; neither when there is nothing on that side.

``since`` and ``until`` (Unix seconds, inclusive) bound the creation time as listed (whole
seconds). ``limit`` defaults to 25; above the edge's maximum (100) it is cut to the maximum,
not refused: the results page says some edges cap ``limit`` and still answer with correct
paging links. ``after=<cursor>`` continues past a page, ``before=<cursor>`` goes back to the
newer items just before one.

Cursors are indexes into an append-only list (:func:`~.wire.encode_position`), so they stay
valid while new posts arrive. Items are in creation order on a clock that never runs
backwards, so a walk stops at the first item outside ``since`` or ``until``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

from herald.simulator.graph import graph_error
from herald.simulator.pipeline import Reply
from herald.simulator.wire import decode_position, encode_position

__all__ = ["LISTING_DEFAULT_LIMIT", "LISTING_MAX_LIMIT", "graph_listing"]

LISTING_DEFAULT_LIMIT = 25
LISTING_MAX_LIMIT = 100

Item = TypeVar("Item")


def _invalid(message: str) -> Reply:
    return Reply(graph_error(400, 100, f"(#100) {message}"))


def _unix_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise _invalid(f"param {name} must be a Unix timestamp")
    return int(raw)


def _limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None or raw == "":
        return LISTING_DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError:
        raise _invalid("param limit must be an integer") from None
    if value < 1:
        raise _invalid("param limit must be a positive integer")
    return min(value, LISTING_MAX_LIMIT)


def _cursor(query: Mapping[str, str], name: str, size: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    position = decode_position(raw)
    if position is None or position >= size:
        raise _invalid(f"Invalid cursor: {name}")
    return position


@dataclass(slots=True)
class _Walk(Generic[Item]):
    """Which items a listing may show, and the walks over them in either direction."""

    items: Sequence[Item]
    created: Callable[[Item], float]
    shown: Callable[[Item], bool] | None
    since: int | None
    until: int | None

    def _second(self, index: int) -> int:
        return int(self.created(self.items[index]))  # the second that created_time shows

    def _visible(self, index: int) -> bool:
        return self.shown is None or self.shown(self.items[index])

    def older(self, start: int, limit: int) -> list[int]:
        """Up to ``limit`` listed items from ``start`` down, newest first."""
        picked: list[int] = []
        for index in range(start, -1, -1):
            if len(picked) == limit:
                break
            at = self._second(index)
            if self.since is not None and at < self.since:
                break
            if (self.until is None or at <= self.until) and self._visible(index):
                picked.append(index)
        return picked

    def newer(self, start: int, limit: int) -> list[int]:
        """Up to ``limit`` listed items from ``start`` up, oldest first."""
        picked: list[int] = []
        for index in range(start, len(self.items)):
            if len(picked) == limit:
                break
            at = self._second(index)
            if self.until is not None and at > self.until:
                break
            if (self.since is None or at >= self.since) and self._visible(index):
                picked.append(index)
        return picked


def _link(request: web.Request, **cursor: str) -> str:
    # The same query with the other cursor dropped: Graph's links carry every parameter.
    query = {k: v for k, v in request.query.items() if k not in ("after", "before")}
    return str(request.url.with_query(query).update_query(cursor))


def graph_listing(
    request: web.Request,
    items: Sequence[Item],
    created: Callable[[Item], float],
    render: Callable[[Item], dict[str, Any]],
    shown: Callable[[Item], bool] | None = None,
) -> dict[str, Any]:
    """One page of an edge listing; items ``shown`` says no of (not listed yet:
    :class:`~.config.ListingLag`) are left out, from the page and from the links alike."""
    query = request.query
    limit = _limit(query)
    walk = _Walk(items, created, shown, _unix_param(query, "since"), _unix_param(query, "until"))
    before = _cursor(query, "before", len(items))
    after = _cursor(query, "after", len(items))
    if before is not None:
        picked = walk.newer(before + 1, limit)[::-1]
    else:
        picked = walk.older(len(items) - 1 if after is None else after - 1, limit)
    paging: dict[str, Any] = {}
    if picked:
        first, last = encode_position(picked[0]), encode_position(picked[-1])
        paging["cursors"] = {"before": first, "after": last}
        if walk.newer(picked[0] + 1, 1):
            paging["previous"] = _link(request, before=first)
        if walk.older(picked[-1] - 1, 1):
            paging["next"] = _link(request, after=last)
    return {"data": [render(items[i]) for i in picked], "paging": paging}
