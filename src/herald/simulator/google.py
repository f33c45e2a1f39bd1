"""Google's side of YouTube: the error envelope, bearer tokens, and the OAuth token endpoint."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from herald.constants import YouTubeReason
from herald.domain import Platform
from herald.simulator.context import SimContext
from herald.simulator.pipeline import Reply, identify
from herald.simulator.wire import bearer_token, read_json_object

__all__ = [
    "FAULT_ANSWERS",
    "UPLOAD_SCOPE",
    "GoogleFaultAnswers",
    "TokenEndpoint",
    "authenticate",
    "google_error",
]

_YT = Platform.YOUTUBE
UPLOAD_SCOPE = "https://www.googleapis.com/auth/youtube.upload"
_FORM = "application/x-www-form-urlencoded"


def google_error(
    status: int,
    reason: str,
    message: str,
    *,
    domain: str = "global",
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }
    return web.json_response(body, status=status, headers=headers)


class GoogleFaultAnswers:
    """Injected Google faults: a 503 ``backendError``, or a 403 ``rateLimitExceeded``."""

    def transient(self, account: str) -> web.StreamResponse:
        return google_error(503, "backendError", "Backend Error")

    def throttle(self, account: str) -> web.StreamResponse:
        return google_error(
            403, YouTubeReason.RATE_LIMIT_EXCEEDED, "Rate Limit Exceeded", domain="usageLimits"
        )


FAULT_ANSWERS = GoogleFaultAnswers()


def authenticate(request: web.Request, ctx: SimContext) -> str:
    """The channel the access token acts for; 401 ``authError`` for any bad token, so the
    connector refreshes once and retries, as it would with Google."""
    check = ctx.accounts.check(_YT, bearer_token(request))
    if check.ok and check.account is not None:
        identify(request, ctx, _YT, check.account)
        return check.account
    raise Reply(
        google_error(
            401,
            "authError",
            "Invalid Credentials",
            headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
        )
    )


def _oauth_error(status: int, error: str, description: str) -> Reply:
    body = {"error": error, "error_description": description}
    return Reply(web.json_response(body, status=status))


class TokenEndpoint:
    """``POST /token`` with the refresh_token grant, as ``oauth2.googleapis.com`` has it."""

    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        if form.get("grant_type") != "refresh_token":
            raise _oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        accounts = self._ctx.accounts
        if (
            form.get("client_id") != accounts.client_id
            or form.get("client_secret") != accounts.client_secret
        ):
            raise _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        refresh_token = str(form.get("refresh_token", ""))
        owner = accounts.refresh_owner(refresh_token)
        if owner is not None:
            identify(request, self._ctx, _YT, owner)
        refreshed = accounts.refresh(refresh_token)
        if refreshed is None:
            raise _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        return web.json_response(
            {
                "access_token": refreshed.access_token,
                "expires_in": refreshed.expires_in,
                "scope": UPLOAD_SCOPE,
                "token_type": "Bearer",
            }
        )

    @staticmethod
    async def _form(request: web.Request) -> dict[str, Any]:
        if request.content_type == _FORM:
            posted = await request.post()
            return {k: v for k, v in posted.items() if isinstance(v, str)}
        return await read_json_object(request) or {}
