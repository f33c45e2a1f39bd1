"""``Idempotency-Key`` on the API's writes: the HTTP side (the rules are
:mod:`herald.service.idempotency`'s).

Every write of a workspace router (POST, PUT, PATCH and DELETE under ``/v1``) honours the
header. The route class made by :func:`idempotent_route` gives each of them

- a dependency that runs once the caller is known (keys are the workspace's): it checks the
  key (422), fingerprints the request (method, path, query, body), and claims the key, or
  answers at once with the stored answer (``Idempotency-Replayed: true``) or a problem (409,
  422) instead of running the route. Being a dependency, it declares the header in the OpenAPI
  schema of exactly those routes;
- a handler around the route's that holds the claim while the route runs, and only then
  (:mod:`herald.keyclaim`: the stores mark the key committed with every write the route
  makes, and refuse them once a retry took the key over), then settles it: a 2xx answer is
  kept before it is sent (a client that gave up waiting and retries at once finds it);
  anything else, an exception or a cancellation included, releases the claim, which frees
  the key only if nothing of the route's work committed. Settling runs to its end even when
  the request is cancelled meanwhile.

Responses are captured as FastAPI returns them, whole: no write route streams its answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, Header, Request, Response
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask
from starlette.datastructures import MutableHeaders

from herald import keyclaim
from herald.api.problems import responses
from herald.constants import (
    IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_REPLAYED_HEADER,
)
from herald.errors import HeraldError, InvalidInput
from herald.service.idempotency import Claim, IdempotencyKeys
from herald.types import StoredResponse

__all__ = ["WRITE_METHODS", "KeyHeader", "claim_key", "fingerprint", "idempotent_route"]

log = logging.getLogger("herald.api")

#: The methods whose routes honour the header: every write.
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The headers of an answer kept with it and given again: the rest describe this request only
#: (``RateLimit-*``: the current budget) or are recomputed (``Content-Length``).
_KEPT_HEADERS = frozenset({"content-type", "location"})
_RECOMPUTED = frozenset({"content-length", *_KEPT_HEADERS})
_STATE = "idempotency"  # request.state: the claim the request holds, if any

KeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_KEY_HEADER,
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=(
            "Makes the write safe to retry: the same key and the same request within "
            "`api.idempotency_ttl_s` (24 h) are answered with the first answer, "
            "`Idempotency-Replayed: true`, and nothing is done again. 1 to 255 printable "
            "ASCII characters, chosen by the client (a UUID), one per write. See docs/api.md."
        ),
        examples=["5f0c7d1e-8a53-4c3e-9d1b-2b9a3c0e6f47"],
    ),
]


@dataclass(frozen=True, slots=True)
class _Held:
    keys: IdempotencyKeys
    claim: Claim


class _Replay(Exception):
    """Not an error: the answer, found before the route ran. Raised by the claiming dependency
    and caught by the route's handler, which answers ``response`` instead."""

    def __init__(self, response: Response) -> None:
        super().__init__("replayed")
        self.response = response


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    """What makes two requests the same one: method, path, query and body, byte for byte."""
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def claim_key(
    request: Request,
    response: Response,
    keys: IdempotencyKeys,
    workspace_id: str,
    key: str | None,
) -> None:
    """The work of the claiming dependency: claim ``key`` for this request, or raise what to
    answer instead. ``response`` is the route's (it holds the ``RateLimit-*`` headers)."""
    if key is None:
        return
    if len(request.headers.getlist(IDEMPOTENCY_KEY_HEADER)) > 1:
        raise InvalidInput(
            f"give one {IDEMPOTENCY_KEY_HEADER} header, not several", field=IDEMPOTENCY_KEY_HEADER
        )
    found = fingerprint(request.method, request.url.path, request.url.query, await request.body())
    started = await keys.begin(workspace_id, key, found)
    if isinstance(started, Claim):
        setattr(request.state, _STATE, _Held(keys, started))
        keyclaim.hold(started)  # until the route's handler (_settled) is done with it
        return
    raise _Replay(_replayed(started, response.headers))


def _replayed(stored: StoredResponse, current: MutableHeaders) -> Response:
    answer = Response(stored.body, status_code=stored.status)
    for name, value in stored.headers:
        answer.headers.append(name, value)
    for name, value in current.items():
        if name not in _RECOMPUTED:
            answer.headers.append(name, value)
    answer.headers[IDEMPOTENCY_REPLAYED_HEADER] = "true"
    return answer


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def idempotent_route(claim: Callable[..., Awaitable[None]]) -> type[APIRoute]:
    """A route class whose write routes honour ``Idempotency-Key``, claimed by the dependency
    ``claim`` (which knows the caller and the services, and calls :func:`claim_key`)."""

    class IdempotentRoute(APIRoute):
        def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
            if WRITE_METHODS & set(kwargs.get("methods") or ()):
                kwargs["dependencies"] = [*(kwargs.get("dependencies") or ()), Depends(claim)]
                # 409: the same request in progress; 422: the key reused, or malformed.
                kwargs["responses"] = {**responses(409, 422), **(kwargs.get("responses") or {})}
            super().__init__(path, endpoint, **kwargs)

        def get_route_handler(self) -> Handler:
            handler = super().get_route_handler()
            return _settled(handler) if WRITE_METHODS & (self.methods or set()) else handler

    return IdempotentRoute


def _settled(handler: Handler) -> Handler:
    async def handle(request: Request) -> Response:
        try:
            # The claim the dependency takes is held for the route's work only: not while it
            # is settled below (the key's own statements), nor by anything after.
            with keyclaim.holding():
                response = await handler(request)
        except _Replay as replay:
            return replay.response
        except BaseException:
            await _release(_taken(request))
            raise
        await _settle(_taken(request), response)
        return response

    return handle


def _taken(request: Request) -> _Held | None:
    held: _Held | None = getattr(request.state, _STATE, None)
    if held is not None:
        delattr(request.state, _STATE)
    return held


async def _settle(held: _Held | None, response: Response) -> None:
    """Keep a success as the key's answer; release the claim on anything else."""
    if held is None:
        return
    body = getattr(response, "body", None)
    if not 200 <= response.status_code < 300 or not isinstance(body, bytes):
        await _release(held)
        return
    answer = StoredResponse(response.status_code, _kept(response.headers.items()), body)
    await _to_the_end(_finish(held, answer))
    if response.background is None and held.keys.purge_due():
        response.background = BackgroundTask(_purge, held.keys)


async def _finish(held: _Held, answer: StoredResponse) -> None:
    try:
        await held.keys.finish(held.claim, answer)
    except HeraldError as exc:
        # The answer still goes out: the work was done. A key whose work committed stays so
        # (a retry is told to wait until its lock ends, then that the work was done); one
        # whose route wrote nothing is taken over by a retry once its lock ends.
        log.warning("api.idempotency_unsaved", extra={"error": str(exc)})


def _kept(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((name, value) for name, value in headers if name in _KEPT_HEADERS)


async def _release(held: _Held | None) -> None:
    if held is not None:
        await _to_the_end(_released(held))


async def _released(held: _Held) -> None:
    try:
        await held.keys.release(held.claim)
    except HeraldError as exc:
        # The request's own error is the one to report. The key stays as it is: committed if
        # the route's work was, else free for the same request once its lock ends.
        log.warning("api.idempotency_unreleased", extra={"error": str(exc)})


async def _to_the_end(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` (settling a key) to its end, even if the request is cancelled meanwhile;
    then raise that cancellation. A key left unsettled holds up a retry until its lock ends.

    ``work`` runs as a task of its own, awaited through :func:`asyncio.shield`: a cancellation
    of the request's task (``Task.cancel``, ``wait_for``, a server cutting a request short)
    stops the wait, never the work, and the wait resumes. anyio's shielded scope alone would not
    do: it keeps anyio's cancellations out (Starlette's), not asyncio's own."""
    task = asyncio.ensure_future(work)
    cancelled = False
    with anyio.CancelScope(shield=True):
        while True:
            try:
                await asyncio.shield(task)
                break
            except asyncio.CancelledError:
                if task.done():  # the work itself was cancelled (the loop is closing)
                    raise
                cancelled = True
    if cancelled:
        raise asyncio.CancelledError


async def _purge(keys: IdempotencyKeys) -> None:
    """After the answer is sent: expired keys are housekeeping, never a request's failure."""
    try:
        await keys.purge_if_due()
    except HeraldError as exc:
        log.warning("api.idempotency_purge_failed", extra={"error": str(exc)})
