"""LinkedIn's answers about a post's engagement, from what :mod:`.engagement` says it shows
at its age: the ``socialActions`` summary of likes and comments, and the member post
statistics of ``memberCreatorPostAnalytics`` (the ``entity`` finder, ``TOTAL`` only).

    GET /rest/socialActions/{share-urn}
    -> {"$URN": "urn:li:activity:...", "target": "urn:li:share:...",
        "likesSummary": {"selectedLikes": [], "aggregatedTotalLikes": 12,
                         "likedByCurrentUser": false, "totalLikes": 12},
        "commentsSummary": {"selectedComments": [], "aggregatedTotalComments": 3,
                            "totalFirstLevelComments": 3, "commentsState": "OPEN"}}

    GET /rest/memberCreatorPostAnalytics?q=entity&entity=(share:urn%3Ali%3Ashare%3A...)
        &queryType=IMPRESSION&aggregation=TOTAL
    -> {"elements": [{"count": 812, "metricType": {"<type>": "IMPRESSION"},
                      "targetEntity": {"share": "urn:li:share:..."}}], "paging": {...}}

The simulator invents no people: ``selectedLikes`` and ``selectedComments`` stay empty.
"""

from __future__ import annotations

import re
from typing import Any

from herald.simulator.engagement import Observed

__all__ = ["ANALYTICS_TYPES", "parse_entity", "post_analytics", "social_actions"]

#: ``queryType`` values of the member post statistics, and what each counts.
ANALYTICS_TYPES: dict[str, str] = {
    "IMPRESSION": "impressions",
    "MEMBERS_REACHED": "reach",
    "REACTION": "like",
    "COMMENT": "comment",
    "RESHARE": "share",
}
_METRIC_TYPE = "com.linkedin.adsexternalapi.memberanalytics.v1.CreatorPostAnalyticsMetricTypeV1"
_ENTITY = re.compile(r"^\((share|ugcPost):(urn:li:(?:share|ugcPost):\d+)\)$")


def parse_entity(raw: str) -> tuple[str, str] | None:
    """``(share:urn:li:share:1)`` (Rest.li 2.0, decoded) -> ``("share", "urn:li:share:1")``;
    a bare URN is taken too."""
    match = _ENTITY.match(raw)
    if match is not None:
        return match.group(1), match.group(2)
    if raw.startswith(("urn:li:share:", "urn:li:ugcPost:")):
        return raw.split(":")[2], raw
    return None


def social_actions(urn: str, observed: Observed) -> dict[str, Any]:
    likes, comments = observed.count("like"), observed.count("comment")
    return {
        "$URN": f"urn:li:activity:{urn.rsplit(':', 1)[-1]}",
        "target": urn,
        "likesSummary": {
            "selectedLikes": [],
            "aggregatedTotalLikes": likes,
            "likedByCurrentUser": False,
            "totalLikes": likes,
        },
        "commentsSummary": {
            "selectedComments": [],
            "aggregatedTotalComments": comments,
            "totalFirstLevelComments": comments,
            "commentsState": "OPEN",
        },
    }


def post_analytics(kind: str, urn: str, query_type: str, observed: Observed) -> dict[str, Any]:
    metric = ANALYTICS_TYPES[query_type]
    if metric == "impressions":
        count = observed.impressions
    elif metric == "reach":
        count = observed.reach
    else:
        count = observed.count(metric)
    element = {
        "count": count,
        "metricType": {_METRIC_TYPE: query_type},
        "targetEntity": {kind: urn},
    }
    return {"elements": [element], "paging": {"start": 0, "count": 10, "links": []}}
