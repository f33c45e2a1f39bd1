"""Every error as ``application/problem+json`` (RFC 9457), from one place.

Body: ``type`` (``urn:herald:problem:<slug>``), ``title``, ``status``, ``detail``, ``field``
(the first offending field, when there is one) and ``errors`` (every problem: ``field``,
``message`` and, for a CSV import, ``line``). The mapping:

=================================================  ======  =====================
:class:`~herald.errors.Unauthenticated`            401     unauthenticated
:class:`~herald.errors.NotFound`                   404     not-found
:class:`~herald.errors.IdempotencyKeyBusy`         409     idempotency-key-in-use
:class:`~herald.errors.IdempotencyAnswerLost`      409     idempotency-key-answer-lost
:class:`~herald.errors.IdempotencyClaimLost`       409     idempotency-key-taken-over
:class:`~herald.errors.Conflict`,
:class:`~herald.errors.InvalidTransition`          409     conflict
:class:`~herald.errors.IdempotencyKeyReused`       422     idempotency-key-reused
:class:`~herald.errors.TooManyRequests`            429     http-429
:class:`~herald.errors.InvalidInput` (all kinds),
request validation                                 422     invalid-input
:class:`~herald.errors.StoreError`                 503     store-unavailable
:class:`~herald.errors.ServiceUnavailable`         503     service-unavailable
other HTTP errors (404 route, 405, 413, 415)       as is   http-<status>
anything else                                      500     internal (no details)
=================================================  ======  =====================
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from herald.errors import (
    Conflict,
    FieldProblem,
    HeraldError,
    IdempotencyAnswerLost,
    IdempotencyClaimLost,
    IdempotencyKeyBusy,
    IdempotencyKeyReused,
    InputErrors,
    InvalidInput,
    InvalidTransition,
    NotFound,
    ServiceUnavailable,
    StoreError,
    TooManyRequests,
    Unauthenticated,
)

__all__ = ["PROBLEM_JSON", "Problem", "ProblemItem", "install", "problem_response", "responses"]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("herald.api")


class ProblemItem(BaseModel):
    field: str | None = None
    message: str
    line: int | None = None


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None
    errors: list[ProblemItem] = []


#: Conflicts with a problem type of their own (the others are ``conflict``).
_CONFLICTS: dict[type[Conflict], str] = {
    IdempotencyAnswerLost: "idempotency-key-answer-lost",
    IdempotencyClaimLost: "idempotency-key-taken-over",
}


def _slug(status: int) -> str:
    return {
        401: "unauthenticated",
        404: "not-found",
        409: "conflict",
        422: "invalid-input",
        500: "internal",
        503: "store-unavailable",
    }.get(status, f"http-{status}")


def problem_response(
    status: int,
    detail: str,
    *,
    field: str | None = None,
    errors: Iterable[ProblemItem] = (),
    headers: Mapping[str, str] | None = None,
    slug: str | None = None,
) -> JSONResponse:
    """A problem answer; its type is ``urn:herald:problem:<slug>``, by default the status's."""
    items = list(errors)
    if field is None and items:
        field = items[0].field
    body = Problem(
        type=f"urn:herald:problem:{slug or _slug(status)}",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        field=field,
        errors=items,
    )
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _items(problems: Sequence[FieldProblem]) -> list[ProblemItem]:
    return [ProblemItem(field=p.field, message=p.message, line=p.line) for p in problems]


def _herald(exc: HeraldError) -> JSONResponse:
    if isinstance(exc, Unauthenticated):
        return problem_response(401, str(exc), headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, NotFound):
        return problem_response(404, str(exc))
    if isinstance(exc, TooManyRequests):
        return problem_response(429, exc.message, headers=exc.headers)
    if isinstance(exc, IdempotencyKeyBusy):
        retry = {"Retry-After": str(exc.retry_after_s)}
        return problem_response(409, exc.message, headers=retry, slug="idempotency-key-in-use")
    if isinstance(exc, Conflict):
        slug = next((s for kind, s in _CONFLICTS.items() if isinstance(exc, kind)), None)
        return problem_response(409, exc.message, field=exc.field, slug=slug)
    if isinstance(exc, InvalidTransition):
        return problem_response(409, str(exc))
    if isinstance(exc, IdempotencyKeyReused):
        item = ProblemItem(field=exc.field, message=exc.message)
        return problem_response(422, exc.message, errors=[item], slug="idempotency-key-reused")
    if isinstance(exc, InputErrors):
        return problem_response(422, exc.message, errors=_items(exc.problems))
    if isinstance(exc, InvalidInput):
        item = ProblemItem(field=exc.field, message=exc.message)
        return problem_response(422, exc.message, errors=[item])
    if isinstance(exc, ServiceUnavailable):
        log.error("api.service_unavailable", extra={"error": exc.message})
        retry = {"Retry-After": str(exc.retry_after_s)}
        return problem_response(503, exc.message, headers=retry, slug="service-unavailable")
    if isinstance(exc, StoreError):
        log.error("api.store_error", exc_info=exc)
        return problem_response(503, "the store is unavailable; try again shortly")
    log.error("api.unexpected_error", exc_info=exc)
    return problem_response(500, "an unexpected error occurred")


def _loc(loc: Sequence[Any]) -> str:
    """``("body", "content", "media", 0, "url")`` -> ``content.media[0].url``."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    if loc and loc[0] == "body" and (not parts or isinstance(parts[0], int)):
        return "body"  # the body as a whole (not an object, or not JSON at all)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _validation(exc: RequestValidationError) -> JSONResponse:
    items = [ProblemItem(field=_loc(e.get("loc", ())), message=e["msg"]) for e in exc.errors()]
    count = len(items)
    detail = "the request is invalid" if count == 1 else f"the request has {count} problems"
    return problem_response(422, f"{detail}: {items[0].field}: {items[0].message}", errors=items)


def _http(exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:  # FastAPI: a body it cannot decode (not UTF-8, ...)
        item = ProblemItem(field="body", message="the body cannot be read as UTF-8 JSON")
        return problem_response(422, item.message, errors=[item])
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such route"
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, HeraldError):
        return _herald(exc)
    if isinstance(exc, RequestValidationError):
        return _validation(exc)
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 405:
            headers = {**(exc.headers or {}), "Allow": _allowed(request)}
            exc = StarletteHTTPException(405, exc.detail, headers=headers)
        return _http(exc)
    log.error("api.unexpected_error", exc_info=exc, extra={"path": request.url.path})
    return problem_response(500, "an unexpected error occurred")


def _allowed(request: Request) -> str:
    """Every method some route serves at this path: FastAPI makes a route per method, and
    the 405 of the first one to match the path lists only its own."""
    methods: set[str] = set()
    for route in _routes(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


def _routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes, those of included routers too (FastAPI keeps each included router as one
    route that holds the ``original_router``'s)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``: the one place errors become HTTP answers."""
    for kind in (HeraldError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(kind, _handle)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the problems a route can answer."""
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": ref}},
        }
        for status in statuses
    }
