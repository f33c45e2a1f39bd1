"""aiohttp sessions that connect only where an :class:`~.policy.EgressPolicy` allows.

Names are resolved once, by :class:`GuardedResolver`, which refuses a name if any of its
addresses is not allowed; aiohttp then connects to exactly the addresses it returned, so a
resolver that answers differently the second time (DNS rebinding) is never asked twice.
Literal addresses in URLs are checked before the request (aiohttp does not resolve them), and
:class:`GuardedConnector` checks the address each new connection actually reached before a
byte of the request is written. The session ignores proxy settings from the environment: a
proxy would connect for it, wherever it was told.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from aiohttp.resolver import DefaultResolver
from aiohttp.tracing import Trace

from herald.egress.policy import EgressPolicy
from herald.errors import EgressRefused

__all__ = ["GuardedConnector", "GuardedResolver", "guarded_session"]


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing a name that has an address the policy does not allow."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not found or any(not self._policy.allows(result["host"]) for result in found):
            raise EgressRefused("address not allowed")
        return found

    async def close(self) -> None:
        await self._inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """aiohttp's connector, refusing a connection whose peer the policy does not allow (the
    last word, whatever resolved the name)."""

    def __init__(self, policy: EgressPolicy, **connector: Any) -> None:
        super().__init__(**connector)
        self._policy = policy

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp's signature)
    ) -> Connection:
        connection = await super().connect(req, traces, timeout)
        transport = connection.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if not peer or not self._policy.allows(str(peer[0])):
            connection.close()
            raise EgressRefused("address not allowed")
        return connection


def guarded_session(
    policy: EgressPolicy,
    *,
    limit: int = 100,
    resolver: AbstractResolver | None = None,
    **session: Any,
) -> aiohttp.ClientSession:
    """A session whose connections reach only what ``policy`` allows (see the module's doc);
    ``resolver``: the one it asks names of (aiohttp's default)."""
    connector = GuardedConnector(policy, resolver=GuardedResolver(policy, resolver), limit=limit)
    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_literal_check(policy))
    return aiohttp.ClientSession(
        connector=connector, trace_configs=[trace], trust_env=False, **session
    )


def _literal_check(policy: EgressPolicy) -> Any:
    async def on_request_start(
        _session: aiohttp.ClientSession,
        _context: Any,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        policy.check_url(params.url)

    return on_request_start
