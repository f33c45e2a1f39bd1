"""Google OAuth access tokens for YouTube: refreshed on demand, kept in memory per channel.

A channel's stored credentials hold an access token (about an hour of life) and a refresh
token. When YouTube answers 401, the connector asks :class:`GoogleTokens` for a fresh access
token and repeats the call once. Refreshed tokens live only in this process's memory, keyed
by channel and by the stored token they replace, so re-authorising a channel (new stored
credentials) drops the old refreshed token. A refresh token Google refuses
(``400 invalid_grant``) means the channel needs re-authorisation: :class:`AuthExpired`; a
throttled refresh (429, or 403 without an OAuth error) is :class:`RateLimited`, waited out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from herald.errors import AuthExpired, PlatformError, RateLimited, TransientPlatformError
from herald.platforms.answers import Clock, ErrorAnswer, Translator
from herald.platforms.http import HttpClient
from herald.types import Credentials

__all__ = ["GoogleTokens", "classify_refresh"]

_PLATFORM = "youtube"
REFRESH_KEYS = ("refresh_token", "client_id", "client_secret")


def classify_refresh(answer: ErrorAnswer) -> PlatformError:
    """A refused token refresh -> one Herald error."""
    data = answer.json()
    status = answer.status
    error = data.get("error") if isinstance(data, Mapping) else None
    reason = error if isinstance(error, str) else ""  # OAuth's: {"error": "invalid_grant"}
    kw: dict[str, Any] = {"platform": _PLATFORM, "status": status, "code": reason or None}
    if status == 429 or (status == 403 and not reason):
        # The OAuth token endpoint refuses a grant with 400 or 401 and an OAuth error. A 403
        # without one is a throttled refresh, as Google's own clients read it (its body an
        # HTML page or Google's API envelope: google-oauth-java-client#57, gsutil#114).
        return answer.throttle("youtube: token refresh throttled", scope="app", **kw)
    if 400 <= status < 500:
        # invalid_grant: the refresh token expired or was revoked; invalid_client and the
        # like: the stored client is wrong. Either way only re-authorisation helps.
        return AuthExpired(f"youtube: token refresh refused ({reason or status})", **kw)
    explicit = answer.retry_after()
    if explicit is not None:
        return RateLimited(
            "youtube: token endpoint unavailable", retry_after=explicit, scope="app", **kw
        )
    return TransientPlatformError(f"youtube: token refresh failed (HTTP {status})", **kw)


class GoogleTokens:
    def __init__(self, http: HttpClient, token_url: str, *, pause_s: float, clock: Clock) -> None:
        self._http = http
        self._token_url = token_url
        self._fail = Translator(classify_refresh, pause_s=pause_s, clock=clock)
        # channel id -> (stored access token it replaces, refreshed access token)
        self._cache: dict[str, tuple[str, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def current(self, channel_id: str, credentials: Credentials) -> str:
        stored = credentials.get("access_token", "")
        cached = self._cache.get(channel_id)
        if cached is not None and cached[0] == stored:
            return cached[1]
        if not stored:
            raise AuthExpired("youtube: the credentials carry no access_token", platform=_PLATFORM)
        return stored

    async def refresh(self, channel_id: str, credentials: Credentials, failed: str) -> str:
        """A new access token replacing ``failed``; one refresh per channel at a time."""
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        async with lock:
            latest = self.current(channel_id, credentials)
            if latest != failed:  # another call refreshed it while we waited
                return latest
            token = await self._request(credentials)
            self._cache[channel_id] = (credentials.get("access_token", ""), token)
            return token

    async def _request(self, credentials: Credentials) -> str:
        missing = [key for key in REFRESH_KEYS if not credentials.get(key)]
        if missing:
            raise AuthExpired(
                f"youtube: access token refused and the credentials carry no {missing[0]}",
                platform=_PLATFORM,
            )
        form = {"grant_type": "refresh_token", **{k: credentials[k] for k in REFRESH_KEYS}}
        resp = await self._http.request("POST", self._token_url, data=form)
        if not resp.ok:
            raise self._fail(resp)
        data = resp.json()
        token = data.get("access_token") if isinstance(data, Mapping) else None
        if not isinstance(token, str) or not token:
            raise TransientPlatformError(
                "youtube: token refresh answered without access_token", platform=_PLATFORM
            )
        return token
