"""Looking a post up in a Graph edge listing (Facebook ``published_posts``, Instagram
``media``), over the whole look-up window.

``since`` (Unix seconds) makes Graph list only posts created in the window, newest first,
100 a page; ``paging.next`` leads to the next page and is absent on the last one. Each page
is one call against the Page's and the app's limits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from herald.constants import GraphEdge
from herald.platforms.graph import GraphApi, merge_usage
from herald.platforms.lookup import (
    Candidate,
    Page,
    oldest,
    page_meter,
    parse_time,
    require_text,
    scan,
    window_start,
)
from herald.types import PlatformUsage, PublishRequest

__all__ = ["LISTED_FIELDS", "LISTING_LIMIT", "candidates", "find_post", "listing_page"]

#: Posts per listing page a look-up asks for: Graph's maximum for these edges.
LISTING_LIMIT = 100
#: What each listing calls a post's text and its creation time.
LISTED_FIELDS: Mapping[GraphEdge, tuple[str, str]] = MappingProxyType(
    {
        GraphEdge.PUBLISHED_POSTS: ("message", "created_time"),
        GraphEdge.MEDIA: ("caption", "timestamp"),
    }
)


def candidates(data: Mapping[str, Any], text_field: str, time_field: str) -> list[Candidate]:
    """A Graph list answer (``{"data": [...]}``) as look-up candidates."""
    items = data.get("data")
    if not isinstance(items, list):
        return []
    return [
        Candidate(
            str(item["id"]), str(item.get(text_field) or ""), parse_time(item.get(time_field))
        )
        for item in items
        if isinstance(item, Mapping) and item.get("id") is not None
    ]


def listing_page(data: Mapping[str, Any], text_field: str, time_field: str) -> Page[str]:
    """A Graph list answer as one look-up page; ``paging.next`` is absent on the last."""
    posts = candidates(data, text_field, time_field)
    paging = data.get("paging")
    link = paging.get("next") if isinstance(paging, Mapping) else None
    return Page(
        posts,
        oldest(p.created_at for p in posts),
        link if isinstance(link, str) and link else None,
    )


async def find_post(
    api: GraphApi, request: PublishRequest, edge: GraphEdge, text: str
) -> tuple[str | None, PlatformUsage | None]:
    """Look ``text`` up in the channel's ``edge`` listing over the whole look-up window.

    Returns the post id (or ``None``) and the highest usage the pages reported. ``since``
    makes Graph list only the window, 100 posts a page; each page is one more call.
    """
    require_text(text, api.http.platform)
    text_field, time_field = LISTED_FIELDS[edge]
    channel = request.channel.external_id
    params = {
        "fields": f"id,{text_field},{time_field}",
        "limit": str(LISTING_LIMIT),
        "since": str(math.floor(window_start(request.since).timestamp())),
    }
    usage: PlatformUsage | None = None

    async def fetch(link: str | None) -> Page[str]:
        nonlocal usage
        if link is None:
            answer = await api.call(
                "GET",
                f"{channel}/{edge}",
                request.credentials,
                channel_id=channel,
                params=params,
            )
        else:
            answer = await api.follow(link, request.credentials, channel_id=channel)
        usage = merge_usage(usage, answer.usage)
        return listing_page(answer.data, text_field, time_field)

    # Facebook meters every Graph call; Instagram's listing calls have no known limit.
    meter = page_meter(request, {"calls": 1}) if api.http.platform == "facebook" else None
    found = await scan(fetch, text, request.since, api.http.platform, next_page=meter)
    return found, usage
