"""Any API node answers any key: the region router of a deployment in several regions.

Each request's key is looked up in the global directory (:class:`~herald.types.Directory`):
a key of this node's region goes on as always; a key of another region's workspace is served
from that region's database (``api.other_regions = "serve"``: the route runs on that region's
services) or redirected to that region's API (``"redirect"``: 307, method and body kept). A
workspace being moved between regions is refused (503 with ``Retry-After``) until the move is
over, so nothing is written to the copy being left. A key the directory does not know goes on
to this node's region, whose database refuses it if it is not there either; so does a key
whose secret or revocation the directory's record refutes: where a workspace lives, or where
it is going, is told only to its own key.

While the directory cannot be read, the keys this region's database holds are served as
always, and the others are answered 503 (not 401: they may be good in another region).

The directory's answers are kept ``api.directory_cache_s`` per key prefix (a move waits that
long before it copies, see ``herald admin move-workspace``), so a busy key costs the directory
one read every few seconds, not one per request.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from herald.api.problems import problem_response
from herald.domain import KeyHome
from herald.errors import StoreError
from herald.service.tenancy import KEY_PATTERN, hash_secret
from herald.types import Directory

if TYPE_CHECKING:
    from herald.api.deps import Services

__all__ = ["MOVING_RETRY_S", "RegionRouter"]

log = logging.getLogger("herald.api")

#: What a caller of a workspace being moved is told to wait before asking again.
MOVING_RETRY_S = 30


class RegionRouter:
    def __init__(
        self,
        app: ASGIApp,
        *,
        region: str,
        directory: Directory,
        services: Mapping[str, Services],
        redirects: Mapping[str, str],
        cache_s: float,
        home_has: Callable[[str], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``services``: each other region's, to serve from; ``redirects``: each other
        region's API address, to redirect to (one of the two is empty); ``home_has``: whether
        this region's database holds the key of a prefix (asked when the directory is away)."""
        self.app = app
        self._region = region
        self._directory = directory
        self._services = dict(services)
        self._redirects = {name: url.rstrip("/") for name, url in redirects.items()}
        self._cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, KeyHome | None]] = {}
        self._home_has = home_has
        self._directory_down = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _bearer(Headers(scope=scope).get("authorization", ""))
        match = KEY_PATTERN.match(token)
        if match is None:
            await self.app(scope, receive, send)  # no key: this region's routes say why
            return
        prefix, secret = match.group(1), match.group(2)
        try:
            home = await self._home(prefix)
        except StoreError as exc:
            await self._without_directory(scope, receive, send, prefix, exc)
            return
        if home is None or (home.region == self._region and home.moving_to is None):
            await self.app(scope, receive, send)
            return
        # From here the answer says something of the workspace (where it lives, where it is
        # going): only to its own live key. Anything else goes on to this region's routes,
        # whose database refuses it as an unknown key.
        if home.revoked or not hmac.compare_digest(home.digest, hash_secret(secret)):
            await self.app(scope, receive, send)
            return
        if home.moving_to is not None:
            response = problem_response(
                503,
                f"this workspace is being moved to {home.moving_to}: try again once it is",
                headers={"Retry-After": str(MOVING_RETRY_S)},
                slug="workspace-moving",
            )
            await response(scope, receive, send)
            return
        services = self._services.get(home.region)
        if services is not None:
            # The route's dependencies read the services from the request's state.
            scope.setdefault("state", {})["services"] = services
            await self.app(scope, receive, send)
            return
        target = self._redirects.get(home.region)
        if target is None:
            await self.app(scope, receive, send)
            return
        location = f"{target}{_sent_path(scope)}"
        response = problem_response(
            307,
            f"this workspace lives in {home.region}: ask its API, {target}",
            headers={"Location": location},
            slug="other-region",
        )
        await response(scope, receive, send)

    async def _without_directory(
        self, scope: Scope, receive: Receive, send: Send, prefix: str, error: StoreError
    ) -> None:
        """The directory cannot be read: a key this region's database holds is served as
        always (its workspace lives here, unless a move is under way, which refuses its writes
        here anyway); any other is answered 503, never 401: the key may be good elsewhere."""
        if not self._directory_down:
            self._directory_down = True
            log.warning("api.directory_unavailable", extra={"error": str(error)})
        try:
            here = await self._home_has(prefix)
        except StoreError:
            here = False
        if here:
            await self.app(scope, receive, send)
            return
        response = problem_response(
            503,
            "the directory of workspaces cannot be read now: try again shortly",
            headers={"Retry-After": "5"},
        )
        await response(scope, receive, send)

    async def _home(self, prefix: str) -> KeyHome | None:
        now = self._clock()
        cached = self._cache.get(prefix)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._directory.key(prefix)
        self._directory_down = False
        if self._cache_s > 0:
            if len(self._cache) > 100_000:
                self._cache.clear()  # bounded: a flood of made-up prefixes cannot grow it
            self._cache[prefix] = (now + self._cache_s, found)
        return found


def _bearer(header: str) -> str:
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _sent_path(scope: Scope) -> str:
    """The path and query as the client sent them, percent-encoded: the decoded path would
    turn ``%3F`` into a query and ``%0D%0A`` into a line break, and fail on characters the
    header's encoding lacks."""
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    path = quote(raw.decode("latin-1"), safe="/%:@!$&'()*+,;=-._~")
    query = scope.get("query_string", b"").decode("latin-1")
    return path + (f"?{quote(query, safe='/%:@!$&()*+,;=-._~?')}" if query else "")
