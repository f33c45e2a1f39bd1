"""YouTube's resumable upload protocol, from an open session to the video resource.

The ``PUT`` of the bytes is the call that makes a video. When it loses its connection, or
answers 5xx, the session is asked for its status (``PUT``, ``Content-Range: bytes */<total>``):

- 200/201 with the video resource: the upload completed, the video exists;
- 308 with ``Range: bytes=0-<last>``: incomplete, resume from ``last + 1``;
- 404: the session is gone and no video was made (transient: a new attempt starts over).

Only when that status query fails as well is the outcome unknown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from herald.errors import OutcomeUnknown, PlatformError, TransientPlatformError
from herald.platforms.http import HttpResponse, header

__all__ = ["MAX_ROUNDS", "ResumableUpload", "Sender", "next_offset"]

_PLATFORM = "youtube"
#: PUTs of the bytes (the first one and resumes) before an attempt gives up.
MAX_ROUNDS = 3
VIDEO_TYPE = "video/*"


class Sender(Protocol):
    def __call__(
        self,
        method: str,
        url: str,
        *,
        creates_post: bool = ...,
        headers: Mapping[str, str] | None = ...,
        data: bytes | None = ...,
    ) -> Awaitable[HttpResponse]: ...


def next_offset(headers: Mapping[str, str]) -> int:
    """The first byte the session still needs, from a 308's ``Range: bytes=0-<last>``."""
    raw = header(headers, "Range")
    if raw is None or "-" not in raw:
        return 0
    last = raw.rsplit("-", 1)[1].strip()
    return int(last) + 1 if last.isdigit() else 0


class ResumableUpload:
    def __init__(
        self,
        send: Sender,
        session_uri: str,
        video: bytes,
        *,
        fail: Callable[[HttpResponse], PlatformError],
    ) -> None:
        self._send = send
        self._uri = session_uri
        self._video = video
        self._fail = fail

    async def run(self) -> Mapping[str, Any]:
        """Upload and return the video resource; raise when no video is known to exist."""
        offset = 0
        for _ in range(MAX_ROUNDS):
            resp = await self._put_from(offset)
            if resp.status == 308:
                offset = next_offset(resp.headers)
                continue
            return self._finished(resp)
        raise TransientPlatformError(
            f"youtube: upload still incomplete after {MAX_ROUNDS} tries; no video was made",
            platform=_PLATFORM,
        )

    async def _put_from(self, offset: int) -> HttpResponse:
        total = len(self._video)
        headers = {"Content-Type": VIDEO_TYPE}
        if offset >= total > 0:  # every byte arrived, only completion is missing
            headers["Content-Range"] = f"bytes */{total}"
        elif offset:
            headers["Content-Range"] = f"bytes {offset}-{total - 1}/{total}"
        try:
            resp = await self._send(
                "PUT", self._uri, creates_post=True, headers=headers, data=self._video[offset:]
            )
        except OutcomeUnknown as exc:
            return await self._status(exc)
        if resp.status >= 500:
            return await self._status(self._fail(resp))
        return resp

    async def _status(self, cause: PlatformError) -> HttpResponse:
        """Ask the session how far it got; unknown outcome if it cannot say."""
        headers = {"Content-Length": "0", "Content-Range": f"bytes */{len(self._video)}"}
        try:
            resp = await self._send("PUT", self._uri, headers=headers, data=b"")
        except PlatformError as exc:
            raise OutcomeUnknown(
                "youtube: upload interrupted and its session status could not be read",
                platform=_PLATFORM,
            ) from exc
        if resp.status in (200, 201, 308, 404):
            return resp
        raise OutcomeUnknown(
            f"youtube: upload interrupted; session status answered HTTP {resp.status}",
            platform=_PLATFORM,
            status=resp.status,
        ) from cause

    def _finished(self, resp: HttpResponse) -> Mapping[str, Any]:
        if resp.status == 404:
            raise TransientPlatformError(
                "youtube: upload session gone; no video was made", platform=_PLATFORM, status=404
            )
        if not resp.ok:
            raise self._fail(resp)
        data = resp.json()
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not data["id"]:
            raise OutcomeUnknown(
                "youtube: upload complete but the answer carries no video id",
                platform=_PLATFORM,
                status=resp.status,
            )
        return data
