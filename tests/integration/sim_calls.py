"""What the simulator's HTTP-level tests share: a simulator that answers at once and one call
that authenticates as an account and reads the answer (the client session is the ``http``
fixture of tests/integration/conftest.py)."""

from __future__ import annotations

from typing import Any

import aiohttp

from herald.simulator import NO_LISTING_LAG, LatencyModel, SimAccount, SimulatorConfig

__all__ = ["NO_LATENCY", "bearer", "call", "exact_config", "linkedin_post", "sent_once"]

NO_LATENCY = LatencyModel(median_s=0, p99_s=0)


def exact_config(**overrides: Any) -> SimulatorConfig:
    """No latency, and listings that show a new post at once, unless ``overrides`` say."""
    return SimulatorConfig(**{"latency": NO_LATENCY, "listing_lag": NO_LISTING_LAG, **overrides})


def sent_once(http: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """``http`` without aiohttp's own repeat of a GET or PUT whose connection dropped (as
    Herald's client has it): a repeat would draw a second fault."""
    if hasattr(http, "_retry_connection"):
        http._retry_connection = False
    return http


def bearer(account: SimAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.credentials['access_token']}"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    account: SimAccount | None = None,
    **kwargs: Any,
) -> tuple[int, Any, Any]:
    """Status, JSON body (None when empty) and headers of one request, as ``account``."""
    headers = kwargs.pop("headers", {})
    if account is not None:
        headers = {**bearer(account), **headers}
    async with http.request(method, url, headers=headers, **kwargs) as response:
        body = await response.json() if response.content_length != 0 else None
        return response.status, body, response.headers


def linkedin_post(author: str, commentary: str, **extra: Any) -> dict[str, Any]:
    """The body of a public LinkedIn post by ``author`` (``POST /rest/posts``); ``extra``
    fields are added or replace the usual ones."""
    return {
        "author": author,
        "commentary": commentary,
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
        **extra,
    }
