"""Graph's insights answers, for Facebook Page posts and Instagram media, from what
:mod:`.engagement` says a post shows at its age.

- ``GET /{page-post-id}/insights?metric=a,b`` (or ``/insights/{metric}``) and
  ``GET /{ig-media-id}/insights?metric=a,b``: ``{"data": [{"name", "period": "lifetime",
  "values": [{"value"}], "title", "description", "id"}]}``; an unknown or retired metric is
  refused with code 100, no metric at all with code 100 too.
- A Page post's ``reactions``, ``comments`` and ``shares`` fields
  (``fields=reactions.summary(total_count),comments.summary(true),shares``), and an
  Instagram media's ``like_count`` and ``comments_count``.

The simulator invents no people: a ``reactions`` or ``comments`` edge lists no one
(``data`` is empty) and only its ``summary`` carries the count.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from herald.simulator.engagement import REACTION_TYPES, Observed
from herald.simulator.graph import graph_error
from herald.simulator.pipeline import Reply

__all__ = [
    "MEDIA_METRICS",
    "POST_METRICS",
    "insights_answer",
    "media_fields",
    "metric_names",
    "post_fields",
    "split_fields",
]

Metric = Callable[[Observed], Any]


def _of(kind: str) -> Metric:
    return lambda observed: observed.count(kind)


#: A Page post's lifetime metrics. ``post_media_view`` and ``post_total_media_view_unique``
#: are the "views" metrics Meta names as the replacements of the impressions ones; the
#: retired ones (``post_impressions_unique`` and the other ``*_unique`` impressions, June
#: 2025) are refused as unknown.
POST_METRICS: dict[str, tuple[str, Metric]] = {
    "post_impressions": ("Lifetime Post Total Impressions", lambda o: o.impressions),
    "post_media_view": ("Lifetime Post Media Views", lambda o: o.impressions),
    "post_total_media_view_unique": ("Lifetime Post Total Media Viewers", lambda o: o.reach),
    "post_reactions_by_type_total": (
        "Lifetime Total post Reactions by Type.",
        lambda o: {kind: o.count(kind) for kind in REACTION_TYPES if o.count(kind)},
    ),
    **{
        f"post_reactions_{kind}_total": (f'Lifetime Total "{kind}" Reactions of a post.', _of(kind))
        for kind in REACTION_TYPES
    },
}
#: An Instagram media's lifetime metrics (``impressions`` was retired in 2025).
MEDIA_METRICS: dict[str, tuple[str, Metric]] = {
    "views": ("Views", lambda o: o.impressions),
    "reach": ("Accounts reached", lambda o: o.reach),
    "likes": ("Likes", lambda o: o.count("like")),
    "comments": ("Comments", lambda o: o.count("comment")),
    "shares": ("Shares", lambda o: o.count("share")),
    "saved": ("Saved", lambda o: o.count("save")),
    "total_interactions": ("Interactions", lambda o: o.engagement),
}

_MODIFIER = re.compile(r"\.(\w+)\(([^)]*)\)")


def metric_names(request: web.Request) -> list[str]:
    """The metrics asked for: the path's ``/insights/{metric}`` or the ``metric`` query."""
    one = request.match_info.get("metric")
    raw = one if one is not None else request.query.get("metric", "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def split_fields(raw: str) -> list[tuple[str, dict[str, str]]]:
    """``fields`` split at its top-level commas: each field's name and its modifiers
    (``reactions.type(LOVE).summary(total_count)`` -> ``("reactions", {"type": "LOVE",
    "summary": "total_count"})``)."""
    out: list[tuple[str, dict[str, str]]] = []
    depth, start = 0, 0
    for index, char in enumerate(raw + ","):
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        elif char == "," and depth == 0:
            part = raw[start:index].strip()
            start = index + 1
            if part:
                name = re.split(r"[.{(]", part, maxsplit=1)[0]
                out.append((name, dict(_MODIFIER.findall(part))))
    return out


def post_fields(observed: Observed, fields: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """The engagement fields of a Page post that ``fields`` asks for."""
    out: dict[str, Any] = {}
    for name, modifiers in fields:
        if name == "reactions":
            kind = modifiers.get("type", "").lower()
            count = observed.count(kind) if kind else observed.reactions
            out[name] = _edge(count, modifiers, {"viewer_reaction": "NONE"})
        elif name == "comments":
            extra = {"order": "ranked", "can_comment": True}
            out[name] = _edge(observed.count("comment"), modifiers, extra)
        elif name == "shares" and observed.count("share"):
            out[name] = {"count": observed.count("share")}  # absent while nobody shared
    return out


def media_fields(observed: Observed, fields: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    if "like_count" in fields:
        out["like_count"] = observed.count("like")
    if "comments_count" in fields:
        out["comments_count"] = observed.count("comment")
    return out


def insights_answer(
    node: str,
    wanted: list[str],
    observed: Observed,
    metrics: dict[str, tuple[str, Metric]],
) -> dict[str, Any]:
    """The ``insights`` edge of ``node`` for the ``wanted`` metrics, or a Graph refusal."""
    if not wanted:
        raise Reply(graph_error(400, 100, "(#100) The parameter metric is required"))
    for index, name in enumerate(wanted):
        if name not in metrics:
            allowed = ", ".join(metrics)
            raise Reply(
                graph_error(
                    400,
                    100,
                    f"(#100) metric[{index}] must be one of the following values: {allowed}",
                )
            )
    data = []
    for name in wanted:
        title, value = metrics[name]
        data.append(
            {
                "name": name,
                "period": "lifetime",
                "values": [{"value": value(observed)}],
                "title": title,
                "description": f"{title} (lifetime)",
                "id": f"{node}/insights/{name}/lifetime",
            }
        )
    return {"data": data}


def _edge(count: int, modifiers: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    edge: dict[str, Any] = {"data": []}
    if modifiers.get("summary", "false") not in ("false", "0", ""):
        edge["summary"] = {"total_count": count, **extra}
    return edge
