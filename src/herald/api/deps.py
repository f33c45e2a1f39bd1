"""Dependencies of the routes: who is calling, and the services they call.

The services are built once by :func:`herald.api.app.create_app` and kept on
``app.state.services``; these functions hand them to routes as ``Annotated`` aliases
(``PostsDep``, ``CallerDep``...), so a route names what it needs and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException

from herald import readsession
from herald.api.idempotency import KeyHeader, claim_key, idempotent_route
from herald.api.key_limits import KeyRateLimits
from herald.api.metrics import ApiMetrics
from herald.api.problems import responses
from herald.api.schemas.common import ID_PATTERN
from herald.config import Settings
from herald.errors import InvalidInput, TooManyRequests, Unauthenticated
from herald.service.channels import ChannelService
from herald.service.deliveries import DeliveryActions
from herald.service.idempotency import IdempotencyKeys
from herald.service.imports import ImportService
from herald.service.ops_metrics import StoreGauges
from herald.service.posts import PostService
from herald.service.subscriptions import WebhookRegistry
from herald.service.tenancy import Tenancy
from herald.types import Readiness, Store

__all__ = [
    "Authenticated",
    "Caller",
    "CallerDep",
    "ChannelsDep",
    "DeliveriesDep",
    "ImportsDep",
    "JsonBody",
    "KeysDep",
    "PathId",
    "PostsDep",
    "Services",
    "ServicesDep",
    "WebhooksDep",
    "single_query_values",
    "workspace_router",
]


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the routes use, wired once per app."""

    settings: Settings
    store: Store
    tenancy: Tenancy
    channels: ChannelService
    posts: PostService
    deliveries: DeliveryActions
    webhooks: WebhookRegistry
    imports: ImportService
    metrics: ApiMetrics
    store_gauges: StoreGauges
    key_limits: KeyRateLimits
    idempotency: IdempotencyKeys
    engine_registry: CollectorRegistry | None
    engine_ready: Readiness | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """The workspace an API key acts for."""

    workspace_id: str
    key_id: str


def single_query_values(request: Request) -> None:
    """Each query parameter at most once. Herald's are all single values, and the framework's
    "last one wins" would quietly drop what the caller meant (``status=failed&status=...``)."""
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key in seen:
            raise InvalidInput(f"{key} is given more than once: give it once", field=key)
        seen.add(key)


def get_services(request: Request) -> Services:
    """The app's services; for a key of another region's workspace, that region's, which
    the region router set on the request (:mod:`herald.api.regions`)."""
    chosen = getattr(request.state, "services", None)
    return cast(Services, chosen if chosen is not None else request.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="A workspace API key: `Authorization: Bearer hk_...`",
)


async def get_caller(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    response: Response,
) -> Caller:
    """The caller, once its key is known and within its request rate (429 otherwise; every
    answer carries the key's ``RateLimit-*`` headers, see :mod:`herald.api.key_limits`)."""
    if credentials is None:
        raise Unauthenticated("give an API key: Authorization: Bearer <key>")
    key = await services.tenancy.authenticate(credentials.credentials)
    # From here the store knows the key: its writes are read back by its next requests,
    # whichever API node answers them, even while a read replica lags (herald.readsession).
    readsession.act_for(key.id)
    if services.key_limits.enabled:
        verdict = services.key_limits.take(key.id)
        headers = verdict.headers()
        if not verdict.allowed:
            raise TooManyRequests(
                "too many requests with this API key: see Retry-After", headers=headers
            )
        response.headers.update(headers)
    return Caller(key.workspace_id, key.id)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def claim_idempotency_key(
    request: Request,
    response: Response,
    caller: CallerDep,
    services: ServicesDep,
    key: KeyHeader = None,
) -> None:
    """On every write: the request's ``Idempotency-Key``, claimed for the caller's workspace,
    or its first answer given again (see :mod:`herald.api.idempotency`)."""
    await claim_key(request, response, services.idempotency, caller.workspace_id, key)


#: The route class of the workspace routers: their writes honour ``Idempotency-Key``.
WorkspaceRoute = idempotent_route(claim_idempotency_key)


def get_channels(services: ServicesDep) -> ChannelService:
    return services.channels


def get_posts(services: ServicesDep) -> PostService:
    return services.posts


def get_deliveries(services: ServicesDep) -> DeliveryActions:
    return services.deliveries


def get_keys(services: ServicesDep) -> Tenancy:
    return services.tenancy


def get_webhooks(services: ServicesDep) -> WebhookRegistry:
    return services.webhooks


def get_imports(services: ServicesDep) -> ImportService:
    return services.imports


ChannelsDep = Annotated[ChannelService, Depends(get_channels)]
PostsDep = Annotated[PostService, Depends(get_posts)]
DeliveriesDep = Annotated[DeliveryActions, Depends(get_deliveries)]
KeysDep = Annotated[Tenancy, Depends(get_keys)]
WebhooksDep = Annotated[WebhookRegistry, Depends(get_webhooks)]
ImportsDep = Annotated[ImportService, Depends(get_imports)]


def require_json(request: Request) -> None:
    """415 for a body that is not JSON (FastAPI would otherwise report a shapeless 422)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise HTTPException(415, "send the body as application/json")


def require_csv(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in ("text/csv", "application/csv"):
        raise HTTPException(415, "send the file as text/csv (UTF-8)")


def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not take: ``?stauts=failed`` must not list
    every post as if no filter had been asked for."""
    if not request.query_params:
        return
    known = _query_names(request.scope.get("route"))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidInput(f"unknown query parameter {unknown[0]!r}", field=unknown[0])


def _query_names(route: object) -> frozenset[str]:
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return frozenset()
    names = _QUERY_NAMES.get(id(dependant))
    if names is None:
        names = _QUERY_NAMES[id(dependant)] = frozenset(_walk_query(dependant))
    return names


def _walk_query(dependant: Dependant) -> list[str]:
    names = [p.alias for p in dependant.query_params]
    for sub in dependant.dependencies:
        names += _walk_query(sub)
    return names


_QUERY_NAMES: dict[int, frozenset[str]] = {}

#: Router dependencies of every ``/v1`` router: the caller is known (or refused, 401) before
#: anything else about the request is judged; unknown query parameters are refused.
Authenticated = [Depends(get_caller), Depends(reject_unknown_query)]
#: Route dependencies of routes with a JSON body.
JsonBody = [Depends(require_json)]
#: An object id in a path (``/v1/posts/{post_id}``): the shape of every id Herald hands out.
PathId = Annotated[str, Path(max_length=64, pattern=ID_PATTERN)]


def workspace_router(prefix: str = "", *, tag: str) -> APIRouter:
    """A router of a workspace's resources: every route answers only a caller with an API key
    (401 otherwise) within its request rate (429), and refuses query parameters it does not
    take; every write honours ``Idempotency-Key``."""
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        responses=responses(401, 429),
        dependencies=Authenticated,
        route_class=WorkspaceRoute,
    )
