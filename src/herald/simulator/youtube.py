"""YouTube Data API v3 as Herald uses it, plus the Google token endpoint and media files,
all on one port: uploads (see :mod:`.youtube_upload`), ``channels.list`` for the uploads
playlist, ``playlistItems.list`` to look videos up, newest first, ``maxResults`` (at most
50) a page, with ``nextPageToken`` while more remain, and ``videos.list`` to read videos by
id (a video is readable at once after its upload; ids it does not know, or another channel's
private videos, are left out of ``items``). Each list call (each page) costs 1 unit.

``part=statistics`` answers a video's ``viewCount``, ``likeCount``, ``favoriteCount`` and
``commentCount`` (strings, as YouTube sends them; ``dislikeCount`` has been private since
2021) at its age, from :mod:`.engagement`.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import Any

from aiohttp import web

from herald.constants import YouTubePath
from herald.domain import Platform
from herald.simulator.config import CallKind as C
from herald.simulator.context import SimContext
from herald.simulator.google import FAULT_ANSWERS, TokenEndpoint, authenticate, google_error
from herald.simulator.media import MEDIA_PREFIX, serve_media
from herald.simulator.pipeline import Reply, faulty, token_owner
from herald.simulator.wire import decode_position, encode_position, int_param
from herald.simulator.youtube_quota import YouTubeQuota
from herald.simulator.youtube_upload import UploadSessions

__all__ = ["MEDIA_PREFIX", "YouTubeSim"]

_YT = Platform.YOUTUBE


_VIDEO_PARTS = frozenset({"id", "snippet", "status", "statistics"})


def _visible_to(video: dict[str, Any], channel: str) -> bool:
    """Its own channel sees every video; others only the public ones."""
    owner = video["snippet"]["channelId"]
    return bool(owner == channel or video["status"]["privacyStatus"] == "public")


def _video_item(video: dict[str, Any], parts: set[str]) -> dict[str, Any]:
    item = {key: video[key] for key in ("kind", "etag", "id")}
    item.update({part: video[part] for part in parts & {"snippet", "status"}})
    return item


def _bad_request(reason: str, message: str) -> Reply:
    return Reply(google_error(400, reason, message))


class YouTubeSim:
    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        self._quota = YouTubeQuota(ctx)
        self._videos: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self._uploads = UploadSessions(ctx, self._quota, self._videos)
        self._token = TokenEndpoint(ctx)
        self._token_owner = token_owner(ctx, _YT)
        self._faulty = partial(faulty, ctx, _YT, FAULT_ANSWERS)

    def who(self, request: web.Request) -> str | None:
        """The channel a request acts for, by its token or by its upload session."""
        return self._token_owner(request) or self._uploads.channel_of(request)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(YouTubePath.UPLOAD, self._faulty(C.UPLOAD, self._uploads.start)),
            web.put(YouTubePath.UPLOAD, self._uploads.put),
            web.get(YouTubePath.CHANNELS, self._faulty(C.READ, self.channels)),
            web.get(YouTubePath.PLAYLIST_ITEMS, self._faulty(C.READ, self.playlist_items)),
            web.get(YouTubePath.VIDEOS, self._faulty(C.READ, self.videos_list)),
            web.post("/token", self._faulty(C.TOKEN, self._token.token)),
            web.get(MEDIA_PREFIX + "{path:.+}", serve_media),
            web.route("*", "/{tail:.*}", self.not_found),
        ]

    async def channels(self, request: web.Request) -> web.StreamResponse:
        channel = authenticate(request, self._ctx)
        self._quota.charge_list(channel)
        parts = request.query.get("part", "").split(",")
        if not {"id", "contentDetails", "snippet"} & set(parts):
            raise _bad_request("required", "Required parameter: part")
        if request.query.get("mine") != "true":
            raise _bad_request("missingRequiredParameter", "No filter selected: use mine=true.")
        item: dict[str, Any] = {"kind": "youtube#channel", "id": channel}
        if "contentDetails" in parts:
            uploads = "UU" + channel.removeprefix("UC")
            item["contentDetails"] = {"relatedPlaylists": {"likes": "", "uploads": uploads}}
        if "snippet" in parts:
            account = self._ctx.accounts.get(_YT, channel)
            item["snippet"] = {"title": account.name if account else channel}
        return web.json_response(
            {
                "kind": "youtube#channelListResponse",
                "pageInfo": {"totalResults": 1, "resultsPerPage": 5},
                "items": [item],
            }
        )

    async def playlist_items(self, request: web.Request) -> web.StreamResponse:
        channel = authenticate(request, self._ctx)
        self._quota.charge_list(channel)
        query = request.query
        if "snippet" not in query.get("part", "").split(","):
            raise _bad_request("required", "Required parameter: part (snippet)")
        playlist = query.get("playlistId", "")
        owner = "UC" + playlist.removeprefix("UU")
        if not playlist.startswith("UU") or self._ctx.accounts.get(_YT, owner) is None:
            raise Reply(
                google_error(
                    404,
                    "playlistNotFound",
                    "The playlist identified with the request's playlistId parameter cannot "
                    "be found.",
                    domain="youtube.playlistItem",
                )
            )
        per_page = int_param(query.get("maxResults"), 5, low=0, high=50)
        if per_page is None:
            raise _bad_request("invalidParameter", "maxResults must be between 0 and 50.")
        videos = self._videos[owner]
        # Positions count from the newest video; the token holds an index into the
        # append-only list instead, so uploads arriving between pages shift nothing.
        first = self._page_start(query.get("pageToken"), len(videos))
        last = max(first - per_page, -1)
        items = [
            self._item(playlist, len(videos) - 1 - index, videos[index])
            for index in range(first, last, -1)
        ]
        body: dict[str, Any] = {
            "kind": "youtube#playlistItemListResponse",
            "pageInfo": {"totalResults": len(videos), "resultsPerPage": per_page},
            "items": items,
        }
        if items and last >= 0:
            body["nextPageToken"] = encode_position(last)
        return web.json_response(body)

    async def videos_list(self, request: web.Request) -> web.StreamResponse:
        """``videos.list`` by ``id``: the requested parts of each video the caller may see."""
        channel = authenticate(request, self._ctx)
        self._quota.charge_list(channel)
        parts = {part for part in request.query.get("part", "").split(",") if part}
        if not parts or not parts <= _VIDEO_PARTS:
            raise _bad_request(
                "required", "Required parameter: part (id, snippet, status, statistics)"
            )
        wanted = [ident for ident in request.query.get("id", "").split(",") if ident]
        if not wanted:
            raise _bad_request("missingRequiredParameter", "No filter selected: use id.")
        known = {video["id"]: video for videos in self._videos.values() for video in videos}
        items = [
            self._with_statistics(_video_item(known[ident], parts), parts)
            for ident in wanted
            if ident in known and _visible_to(known[ident], channel)
        ]
        return web.json_response(
            {
                "kind": "youtube#videoListResponse",
                "items": items,
                "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
            }
        )

    def _with_statistics(self, item: dict[str, Any], parts: set[str]) -> dict[str, Any]:
        if "statistics" in parts:
            seen = self._ctx.engagement.observe(_YT, item["id"], self._ctx.clock.now())
            item["statistics"] = {
                "viewCount": str(seen.impressions),
                "likeCount": str(seen.count("like")),
                "favoriteCount": "0",
                "commentCount": str(seen.count("comment")),
            }
        return item

    @staticmethod
    def _page_start(token: str | None, size: int) -> int:
        """The index of the newest video on the page ``token`` asks for."""
        if token is None or token == "":
            return size - 1
        index = decode_position(token)
        if index is None or index >= size:
            raise _bad_request("invalidPageToken", "The request specifies an invalid page token.")
        return index

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        return google_error(404, "notFound", "Not Found")

    @staticmethod
    def _item(playlist: str, position: int, video: dict[str, Any]) -> dict[str, Any]:
        snippet = video["snippet"]
        return {
            "kind": "youtube#playlistItem",
            "id": f"{playlist}.{video['id']}",
            "snippet": {
                "publishedAt": snippet["publishedAt"],
                "channelId": snippet["channelId"],
                "title": snippet["title"],
                "description": snippet["description"],
                "playlistId": playlist,
                "position": position,
                "resourceId": {"kind": "youtube#video", "videoId": video["id"]},
            },
        }
