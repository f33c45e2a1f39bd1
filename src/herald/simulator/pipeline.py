"""What happens around every platform request: latency, in-flight gauges, the request log,
and the fault stories: of post-creating calls (:func:`with_faults`) and of every other kind
of call (:func:`faulty`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from herald.domain import Platform
from herald.simulator.audit import RequestRecord
from herald.simulator.config import CallKind
from herald.simulator.context import SimContext
from herald.simulator.faults import Fault
from herald.simulator.wire import bearer_token

__all__ = [
    "COMMIT_ON_DROP",
    "ConnectionDropped",
    "FaultAnswers",
    "Reply",
    "faulty",
    "identify",
    "pipeline",
    "token_owner",
    "with_faults",
]

_ACCOUNT = web.RequestKey("herald_sim_account", str)


class ConnectionDropped(Exception):
    """Raised by a handler to end the request with a closed connection and no answer."""


class Reply(Exception):
    """Raised by a check deep in a handler to answer at once with ``response``."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__(response.status)
        self.response = response


class FaultAnswers(Protocol):
    """A platform's own shapes of an injected transient error and throttle."""

    def transient(self, account: str) -> web.StreamResponse: ...

    def throttle(self, account: str) -> web.StreamResponse: ...


Who = Callable[[web.Request], str | None]


def token_owner(ctx: SimContext, platform: Platform) -> Who:
    """The account a request's token acts for (bearer, or Graph's ``access_token`` query)."""

    def who(request: web.Request) -> str | None:
        token = bearer_token(request) or request.query.get("access_token")
        check = ctx.accounts.check(platform, token)
        return check.account if check.ok else None

    return who


def pipeline(
    ctx: SimContext,
    platform: Platform,
    *,
    exempt_prefix: str = "",
    who: Who | None = None,
) -> Middleware:
    """Latency, gauges and the request log; paths under ``exempt_prefix`` skip all three.

    The account is found before the latency is served, so the per-account gauges see the
    whole time a request holds; handlers still authenticate on their own.
    """
    audit = ctx.audit
    dice = ctx.dice
    owner = who or token_owner(ctx, platform)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if exempt_prefix and request.path.startswith(exempt_prefix):
            return await handler(request)
        arrived = time.monotonic()
        audit.request_started(platform)
        account = owner(request)
        if account is not None:
            identify(request, ctx, platform, account)
        status = 0
        try:
            delay = dice.latency_s(platform)
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                response = await handler(request)
            except Reply as reply:
                response = reply.response
            except web.HTTPException as exc:
                status = exc.status
                raise
            except ConnectionDropped:
                if request.transport is not None:
                    request.transport.close()
                # Never written: aiohttp skips writing to a closed transport.
                return web.Response()
            status = response.status
            return response
        finally:
            audit.request_finished(
                RequestRecord(
                    arrived,
                    platform,
                    request.get(_ACCOUNT),
                    request.method,
                    request.path,
                    status,
                    ended=time.monotonic(),
                    content_range=request.headers.get("Content-Range"),
                )
            )

    return middleware


def identify(request: web.Request, ctx: SimContext, platform: Platform, account: str) -> None:
    """Mark the request as acting for ``account``, for the per-account gauges and the log."""
    if _ACCOUNT not in request:
        request[_ACCOUNT] = account
        ctx.audit.account_started(platform, account)


async def with_faults(
    ctx: SimContext,
    platform: Platform,
    account: str,
    answers: FaultAnswers,
    commit: Callable[[bool], web.StreamResponse],
) -> web.StreamResponse:
    """Run ``commit(delivered)`` under the fault drawn for this call (see :mod:`.faults`)."""
    fault = ctx.dice.draw(platform)
    if fault is None:
        return commit(True)
    ctx.audit.injected_fault(platform, fault.value)
    answered = _answered(ctx, platform, account, answers, fault)
    if answered is not None:
        return answered
    if fault is Fault.DROP:
        commit(False)
        raise ConnectionDropped
    if ctx.dice.commit_before_hang(platform):
        commit(False)
    await ctx.hang(ctx.dice.faults(platform).hang_s)
    raise ConnectionDropped


#: Kinds of call that make something a later call uses (an Instagram container, a YouTube
#: upload session, a LinkedIn image upload): a ``drop`` carries the call out before it closes
#: the connection, so the thing exists, orphaned, as on the platform.
COMMIT_ON_DROP = frozenset({CallKind.CONTAINER, CallKind.UPLOAD})


def faulty(
    ctx: SimContext, platform: Platform, answers: FaultAnswers, kind: CallKind, handler: Handler
) -> Handler:
    """``handler`` behind the faults of ``kind``, drawn before it runs: a call that fails
    commits nothing, but for a drop of a kind in :data:`COMMIT_ON_DROP` (see :mod:`.faults`)."""

    async def run(request: web.Request) -> web.StreamResponse:
        fault = ctx.dice.draw(platform, kind)
        if fault is None:
            return await handler(request)
        ctx.audit.injected_fault(platform, f"{kind.value}:{fault.value}")
        account = request.get(_ACCOUNT) or ""
        answered = _answered(ctx, platform, account, answers, fault)
        if answered is not None:
            return answered
        if fault is Fault.DROP and kind in COMMIT_ON_DROP:
            await _carry_out(handler, request)
        elif fault is Fault.TIMEOUT:
            await ctx.hang(ctx.dice.faults(platform).hang_s)
        raise ConnectionDropped

    return run


async def _carry_out(handler: Handler, request: web.Request) -> None:
    """Run ``handler`` for its effect only: its answer, a refusal included, is never sent."""
    with contextlib.suppress(Reply):
        await handler(request)


def _answered(
    ctx: SimContext, platform: Platform, account: str, answers: FaultAnswers, fault: Fault
) -> web.StreamResponse | None:
    """The platform-shaped answer of an error or a throttle fault; None for the others,
    which end with no answer at all."""
    if fault is Fault.ERROR:
        return answers.transient(account)
    if fault is Fault.THROTTLE:
        ctx.audit.throttled(platform, account, ctx.clock.now())
        return answers.throttle(account)
    return None
