"""The shape of a LinkedIn ``POST /rest/posts`` body, checked the way Rest.li checks it:
unknown fields and wrong types are refused with 422, a foreign author with 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from herald.simulator.pipeline import Reply

__all__ = ["COMMENTARY_MAX", "PostBody", "validate_post"]

COMMENTARY_MAX = 3000
_FIELDS = frozenset(
    {
        "author",
        "commentary",
        "visibility",
        "distribution",
        "lifecycleState",
        "isReshareDisabledByAuthor",
        "content",
        "contentLandingPage",
        "contentCallToActionLabel",
        "container",
        "reshareContext",
    }
)
_VISIBILITIES = frozenset({"PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"})
_FEEDS = frozenset({"MAIN_FEED", "NONE"})

ImageReady = Callable[[str, str], bool]  # (image urn, author urn) -> uploaded by that author


@dataclass(frozen=True, slots=True)
class PostBody:
    commentary: str
    visibility: str
    distribution: dict[str, Any]
    reshare_disabled: bool
    content: dict[str, Any] | None


def _unprocessable(path: str, problem: str) -> Reply:
    body = {"status": 422, "message": f"ERROR :: /{path} :: {problem}"}
    return Reply(web.json_response(body, status=422))


def validate_post(raw: dict[str, Any], author: str, image_ready: ImageReady) -> PostBody:
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise _unprocessable(unknown[0], "unrecognized field found but not allowed")
    if raw.get("author") != author:
        body = {
            "status": 403,
            "serviceErrorCode": 100,
            "code": "ACCESS_DENIED",
            "message": "Not enough permissions to access: partnerApiPostsExternal.CREATE",
        }
        raise Reply(web.json_response(body, status=403))
    commentary = raw.get("commentary")
    if not isinstance(commentary, str):
        raise _unprocessable("commentary", "field is required and must be a string")
    if len(commentary) > COMMENTARY_MAX:
        raise _unprocessable(
            "commentary", f"length of text {len(commentary)} exceeds max length {COMMENTARY_MAX}"
        )
    visibility = raw.get("visibility")
    if visibility not in _VISIBILITIES:
        raise _unprocessable("visibility", f"{visibility!r} is not a valid visibility")
    if raw.get("lifecycleState") != "PUBLISHED":
        raise _unprocessable("lifecycleState", "only PUBLISHED is supported by the simulator")
    reshare = raw.get("isReshareDisabledByAuthor", False)
    if not isinstance(reshare, bool):
        raise _unprocessable("isReshareDisabledByAuthor", "must be a boolean")
    return PostBody(
        commentary,
        str(visibility),
        _distribution(raw.get("distribution")),
        reshare,
        _content(raw.get("content"), author, image_ready),
    )


def _distribution(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("feedDistribution") not in _FEEDS:
        raise _unprocessable("distribution/feedDistribution", "MAIN_FEED or NONE is required")
    for key in ("targetEntities", "thirdPartyDistributionChannels"):
        if not isinstance(raw.get(key, []), list):
            raise _unprocessable(f"distribution/{key}", "must be an array")
    return raw


def _content(raw: Any, author: str, image_ready: ImageReady) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or len(raw) != 1:
        raise _unprocessable("content", "must hold exactly one of article or media")
    if "article" in raw:
        article = raw["article"]
        source = article.get("source") if isinstance(article, dict) else None
        if not isinstance(source, str) or not source.startswith(("http://", "https://")):
            raise _unprocessable("content/article/source", "a URL is required")
        if not isinstance(article.get("title", ""), str):
            raise _unprocessable("content/article/title", "must be a string")
        return raw
    media = raw.get("media")
    if not isinstance(media, dict):
        raise _unprocessable("content", "the simulator supports article and media content")
    urn = media.get("id")
    if not isinstance(urn, str) or not urn.startswith("urn:li:image:"):
        raise _unprocessable("content/media/id", "an image URN is required")
    if not image_ready(urn, author):
        raise _unprocessable("content/media/id", f"{urn} is not an uploaded image of {author}")
    if not isinstance(media.get("altText", ""), str):
        raise _unprocessable("content/media/altText", "must be a string")
    return raw
