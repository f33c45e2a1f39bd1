"""What Facebook and Instagram share: the Graph API error envelope, usage headers and calls.

Graph reports throttling in the body (``code`` 4, 17, 32, 613, ...), usually with HTTP 400,
so classification branches on ``code``, not on the HTTP status (docs/platforms.md). The
usage headers are percentages of the app's and the Page's limits; when a throttling error
says nothing else, the wait is ``estimated_time_to_regain_access`` (minutes) or, when that
is 0 or absent, ``engine.throttle_pause_s``, marked as not named by the platform (the engine
doubles it while the throttling lasts).

:meth:`GraphApi.follow` reads the ``paging.next`` links of an edge listing
(:mod:`.graph_listing`).
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from yarl import URL

from herald.constants import (
    GRAPH_APP_THROTTLE_CODES,
    GRAPH_PAGE_THROTTLE_CODES,
    GRAPH_PERMISSION_CODES,
    GRAPH_REGAIN_FIELD,
    GRAPH_USAGE_FIELDS,
    GRAPH_VERSION_HEADER,
    GraphCode,
    GraphHeader,
)
from herald.domain import Platform
from herald.errors import (
    AuthExpired,
    ContentRejected,
    DuplicateRejected,
    LimitScope,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    TransientPlatformError,
)
from herald.platforms.answers import ErrorAnswer, Translator, by_status
from herald.platforms.connector import HttpConnector, S
from herald.platforms.http import HttpClient, bearer, header, json_body
from herald.types import Credentials, PlatformUsage, VersionObserver
from herald.versions import graph_version

__all__ = [
    "AUTH_CODES",
    "POLICY_BLOCK_S",
    "GraphAnswer",
    "GraphApi",
    "GraphConnector",
    "GraphError",
    "classify",
    "merge_usage",
    "parse_error",
    "parse_usage",
    "regain_s",
    "throttle",
    "unknown_if_sent",
]

#: "Temporarily blocked for policy violations": the Page waits an hour.
POLICY_BLOCK_CODE = 368
POLICY_BLOCK_S = 3600.0
#: 1: an unknown error, possibly temporary; 2: a temporary problem on Graph's side.
TRANSIENT_CODES = frozenset({1, GraphCode.SERVICE_ERROR})
#: 102: the session expired; 10: a permission is missing.
AUTH_CODES = frozenset({GraphCode.INVALID_TOKEN, 102, 10, *GRAPH_PERMISSION_CODES})


@dataclass(frozen=True, slots=True)
class GraphError:
    code: int | None
    subcode: int | None
    message: str
    is_transient: bool = False

    @property
    def label(self) -> str:
        return str(self.code) if self.subcode is None else f"{self.code}/{self.subcode}"


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def parse_error(body: bytes | Mapping[str, Any] | None) -> GraphError | None:
    """The ``{"error": {...}}`` envelope, or ``None`` when the body is not one."""
    data = json_body(body)
    if not isinstance(data, Mapping) or not isinstance(data.get("error"), Mapping):
        return None
    err: Mapping[str, Any] = data["error"]
    message = err.get("message")
    return GraphError(
        code=_int(err.get("code")),
        subcode=_int(err.get("error_subcode")),
        message=str(message)[:300] if message is not None else "",
        is_transient=err.get("is_transient") is True,
    )


def _pct(entry: Mapping[str, Any]) -> float | None:
    values = [
        float(v)
        for key in GRAPH_USAGE_FIELDS
        if isinstance(v := entry.get(key), int | float) and not isinstance(v, bool)
    ]
    return max(values) if values else None


def _max(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _json_header(headers: Mapping[str, str], name: str) -> Any:
    raw = header(headers, name)
    if raw is None:
        return None
    try:
        return jsonlib.loads(raw)
    except ValueError:
        return None


def _buc_entries(headers: Mapping[str, str], channel_id: str | None) -> list[Mapping[str, Any]]:
    buc = _json_header(headers, GraphHeader.BUSINESS_USE_CASE_USAGE)
    if not isinstance(buc, Mapping):
        return []
    # The header is keyed by the Page (or business) id; when ours is absent every entry
    # counts, since a business-level limit binds the channel too.
    keys = [channel_id] if channel_id is not None and channel_id in buc else list(buc)
    return [e for k in keys if isinstance(buc[k], list) for e in buc[k] if isinstance(e, Mapping)]


def parse_usage(headers: Mapping[str, str], channel_id: str | None = None) -> PlatformUsage | None:
    """``X-App-Usage`` and ``X-Business-Use-Case-Usage`` as one :class:`PlatformUsage`."""
    app = _json_header(headers, GraphHeader.APP_USAGE)
    app_pct = _pct(app) if isinstance(app, Mapping) else None
    entries = _buc_entries(headers, channel_id)
    channel_pct = _max(*(_pct(e) for e in entries))
    minutes = _max(
        *(float(m) for e in entries if isinstance(m := e.get(GRAPH_REGAIN_FIELD), int | float))
    )
    regain = minutes * 60.0 if minutes else None
    if app_pct is None and channel_pct is None and regain is None:
        return None
    return PlatformUsage(app_pct=app_pct, channel_pct=channel_pct, regain_after_s=regain)


def merge_usage(a: PlatformUsage | None, b: PlatformUsage | None) -> PlatformUsage | None:
    """The highest usage of two answers (several calls make one publish)."""
    if a is None or b is None:
        return a or b
    return PlatformUsage(
        app_pct=_max(a.app_pct, b.app_pct),
        channel_pct=_max(a.channel_pct, b.channel_pct),
        regain_after_s=_max(a.regain_after_s, b.regain_after_s),
    )


def regain_s(answer: ErrorAnswer) -> float | None:
    """The usage headers' estimate of when access comes back, if they name one."""
    usage = parse_usage(answer.headers, answer.channel_id)
    return usage.regain_after_s if usage is not None and usage.regain_after_s else None


def throttle(answer: ErrorAnswer, message: str, *, scope: LimitScope, **kw: Any) -> RateLimited:
    """A Graph throttle: for ``Retry-After``, else the usage headers' regain estimate, else
    the configured pause (not named: the engine lengthens it while the throttling lasts)."""
    return answer.throttle(message, scope=scope, regain_s=regain_s(answer), **kw)


def _by_code(platform: str, err: GraphError, answer: ErrorAnswer) -> PlatformError:
    code = err.code
    kw: dict[str, Any] = {"platform": platform, "code": err.label, "status": answer.status}
    limited = f"{platform}: {err.message or 'request limit reached'}"
    if code in GRAPH_APP_THROTTLE_CODES:
        return throttle(answer, limited, scope="app", **kw)
    if code in GRAPH_PAGE_THROTTLE_CODES:
        return throttle(answer, limited, scope="channel", **kw)
    if code == POLICY_BLOCK_CODE:
        return RateLimited(limited, retry_after=POLICY_BLOCK_S, scope="channel", **kw)
    message = f"{platform}: {err.message or 'error'}"
    if code in AUTH_CODES:
        return AuthExpired(message, **kw)
    if code in TRANSIENT_CODES or err.is_transient:
        return TransientPlatformError(message, **kw)
    if code == GraphCode.DUPLICATE_POST:
        return DuplicateRejected(message, **kw)
    return ContentRejected(message, **kw)


def classify(answer: ErrorAnswer, *, platform: str) -> PlatformError:
    """The Facebook table of docs/platforms.md: one error answer -> one Herald error.

    An answer without Graph's envelope (a proxy, a crash, an empty 5xx) is read by its
    status alone.
    """
    err = parse_error(answer.body)
    if err is None or err.code is None:
        return by_status(answer, f"{platform}: HTTP {answer.status}", platform=platform)
    return unknown_if_sent(_by_code(platform, err, answer), creates_post=answer.creates_post)


def unknown_if_sent(error: PlatformError, *, creates_post: bool) -> PlatformError:
    """A temporary error answered to the call that creates the post does not prove the post
    was not made (Graph may commit and still answer code 1 or 2): look it up before any
    resend. Refusals that name a reason (limits, auth, content, not ready) stay as they are."""
    if creates_post and type(error) is TransientPlatformError:
        return OutcomeUnknown(
            error.message, platform=error.platform, code=error.code, status=error.status
        )
    return error


@dataclass(slots=True)
class GraphAnswer:
    data: Mapping[str, Any]
    usage: PlatformUsage | None


class GraphApi:
    """Authenticated Graph calls whose failures ``fail`` translates (Instagram adds its own
    codes in front of Facebook's table)."""

    def __init__(
        self,
        http: HttpClient,
        base_url: str,
        fail: Translator,
        versions: VersionObserver | None = None,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self._fail = fail
        self._versions = versions
        self._asked = graph_version(base_url)

    async def call(
        self,
        method: str,
        path: str | URL,
        credentials: Credentials,
        *,
        channel_id: str,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        creates_post: bool = False,
    ) -> GraphAnswer:
        """One call; ``path`` is relative to the API's base URL, a :class:`URL` is used whole."""
        platform = self.http.platform
        resp = await self.http.request(
            method,
            path if isinstance(path, URL) else f"{self.base_url}/{path}",
            creates_post=creates_post,
            headers=bearer(credentials, platform),
            json=json,
            params=params,
        )
        self._note_version(resp.headers)
        if not resp.ok:
            raise self._fail(resp, creates_post=creates_post, channel_id=channel_id)
        data = resp.json()
        if not isinstance(data, Mapping):
            cls = OutcomeUnknown if creates_post else TransientPlatformError
            raise cls(f"{platform}: unreadable answer", platform=platform, status=resp.status)
        return GraphAnswer(data, parse_usage(resp.headers, channel_id))

    def _note_version(self, headers: Mapping[str, str]) -> None:
        # Every Graph answer names the version that made it: another than the one asked for
        # means Graph upgraded the call, the asked one being past its end of life.
        served = header(headers, GRAPH_VERSION_HEADER)
        if self._versions is not None and self._asked is not None and served is not None:
            self._versions.served(Platform(self.http.platform), self._asked, served)

    async def follow(self, link: str, credentials: Credentials, *, channel_id: str) -> GraphAnswer:
        """GET a ``paging.next`` link, which carries every parameter of the listing."""
        return await self.call("GET", self._own_link(link), credentials, channel_id=channel_id)

    def _own_link(self, link: str) -> URL:
        # The token goes with every request, so a link is followed only on the API's own
        # host; Graph writes ``access_token`` into its links, and a secret never travels in
        # a URL here: the header carries it.
        platform = self.http.platform
        try:
            url = URL(link, encoded=True)
            same_host = url.is_absolute() and url.origin() == URL(self.base_url).origin()
        except ValueError:
            same_host = False
        if not same_host:
            raise TransientPlatformError(
                f"{platform}: a paging link leads away from the API host", platform=platform
            )
        kept = [
            part
            for part in url.raw_query_string.split("&")
            if part and not part.startswith("access_token=")
        ]
        bare = str(url.with_query(None).with_fragment(None))
        return URL(f"{bare}?{'&'.join(kept)}" if kept else bare, encoded=True)


class GraphConnector(HttpConnector[S]):
    """A connector on the Graph API: Facebook's or Instagram's."""

    @cached_property
    def _graph(self) -> GraphApi:
        return GraphApi(self._http, self._settings.base_url, self._fail, self._versions)
