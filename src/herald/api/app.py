"""The application factory: :func:`create_app` wires settings, store and services into FastAPI.

Nothing happens at import time. The store is opened and closed by whoever owns it (the CLI,
a test): the app only uses it. Nothing of the engine or the connectors is imported here: the
caller passes the platforms' content rules, and when an engine runs in the same process
(``herald serve``) its ``notify`` (new and moved deliveries wake it at once), its readiness
(``/readyz`` answers 503 while it cannot work) and its metrics registry (``/metrics`` includes
it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from prometheus_client import CollectorRegistry

from herald import __version__
from herald.api import problems
from herald.api.deps import Services, single_query_values
from herald.api.guards import BodyLimit
from herald.api.key_limits import KeyRateLimits
from herald.api.metrics import ApiMetrics, MetricsMiddleware
from herald.api.regions import RegionRouter
from herald.api.routers import (
    api_keys,
    channels,
    deliveries,
    imports,
    ops,
    post_files,
    posts,
    webhooks,
)
from herald.config import Settings
from herald.domain import Platform, utcnow
from herald.egress.policy import EgressPolicy
from herald.errors import ConfigError
from herald.service.channels import ChannelService
from herald.service.deliveries import DeliveryActions
from herald.service.idempotency import IdempotencyKeys
from herald.service.import_runner import ImportRunner
from herald.service.import_work import ImportLimits
from herald.service.imports import ImportService
from herald.service.ops_metrics import StoreGauges
from herald.service.posts import PostService
from herald.service.scheduling import Scheduler
from herald.service.subscriptions import WebhookRegistry
from herald.service.tenancy import Tenancy
from herald.service.vault import Vault
from herald.types import Notify, Readiness, Regional, Store, Validator

__all__ = ["create_app"]


_DESCRIPTION = """\
Schedule and publish posts to Facebook Pages, Instagram, LinkedIn and YouTube.

Every `/v1` call needs a workspace API key: `Authorization: Bearer hk_...`. Errors are
`application/problem+json` with the offending field(s). See docs/api.md.
"""


def create_app(
    settings: Settings,
    store: Store,
    *,
    validators: Mapping[Platform, Validator],
    notify: Notify | None = None,
    engine_registry: CollectorRegistry | None = None,
    engine_ready: Readiness | None = None,
    store_gauges: StoreGauges | None = None,
    clock: Callable[[], datetime] = utcnow,
    regional: Regional | None = None,
) -> FastAPI:
    """The API on ``store`` (already open), given what it needs from the rest of Herald.

    - ``validators``: each platform's content rules; posts are checked with them before
      anything is stored, so an API without them for every platform refuses to start;
    - ``notify``: wakes an engine running in this process when deliveries are added or moved
      (other engines learn of them from the store: PostgreSQL's ``NOTIFY``, or within their
      ``engine.idle_recheck_s``);
    - ``engine_registry``: that engine's Prometheus metrics, served on ``/metrics`` too;
    - ``engine_ready``: whether that engine can work (started, its store answers): ``/readyz``
      answers 503 while it cannot;
    - ``store_gauges``: the store-wide gauges ``/metrics`` reads at scrape time, on that
      engine's registry (default: on the API's own).

    - ``regional``: in a deployment of several regions (``settings.regions``), the global
      directory and, to serve the keys of other regions' workspaces from their databases
      (``api.other_regions = "serve"``), those regions' stores, open; the services built on
      them are ``app.state.regions`` (see :mod:`herald.api.regions`).

    CSV imports run as background tasks of the app's
    :class:`~herald.service.import_runner.ImportRunner` (``app.state.services.imports.runner``),
    which the server starts and closes around serving (:mod:`herald.server`).

    Refuses to start without a secret key (:class:`~herald.errors.ConfigError`): channel
    credentials are encrypted with it.
    """
    vault = Vault.from_settings(settings)
    missing = [p.value for p in Platform if p not in validators]
    if missing:
        raise ConfigError(f"no content rules for {', '.join(missing)}: posts cannot be checked")
    app = FastAPI(
        dependencies=[Depends(single_query_values)],
        title="Herald",
        version=__version__,
        description=_DESCRIPTION,
        openapi_tags=[
            {"name": "posts", "description": "Posts and their deliveries"},
            {"name": "channels", "description": "Social accounts and posting slots"},
        ],
    )
    api_metrics = ApiMetrics()
    key_limits = KeyRateLimits(settings.api.key_requests_per_s, settings.api.key_burst)
    gauges = store_gauges or StoreGauges(store, api_metrics.registry)

    def services(here: Settings, db: Store, wake: Notify | None) -> Services:
        """The services of one region's database (``db``), as a process of it sees them."""
        scheduler = Scheduler(db, here.api, clock=clock)
        post_service = PostService(
            store=db, scheduler=scheduler, validators=validators, notify=wake, clock=clock
        )
        runner = ImportRunner(
            store=db,
            posts=post_service,
            limits=ImportLimits.from_settings(here.api),
            notify=wake,
            clock=clock,
            spool_dir=here.api.import_spool_dir,
        )
        directory = None if regional is None else regional.directory
        return Services(
            settings=here,
            store=db,
            tenancy=Tenancy(db, clock=clock, directory=directory, region=here.region),
            channels=ChannelService(
                store=db,
                vault=vault,
                notify=wake,
                clock=clock,
                home_region=here.region if here.regions else None,
            ),
            posts=post_service,
            deliveries=DeliveryActions(store=db, scheduler=scheduler, notify=wake, clock=clock),
            webhooks=WebhookRegistry(
                db, vault, clock=clock, egress=EgressPolicy.from_settings(here.egress)
            ),
            imports=ImportService(store=db, runner=runner, clock=clock),
            # One registry, one rate per key, whichever region's database serves it.
            metrics=api_metrics,
            store_gauges=gauges,
            key_limits=key_limits,
            idempotency=IdempotencyKeys(
                db,
                vault,
                ttl_s=here.api.idempotency_ttl_s,
                lock_s=here.api.idempotency_lock_s,
                clock=clock,
            ),
            engine_registry=engine_registry,
            engine_ready=engine_ready,
        )

    app.state.services = services(settings, store, notify)
    # The other regions' engines learn of new work from their database, not from this one's.
    others = {} if regional is None else regional.stores
    app.state.regions = {
        name: services(settings.in_region(name), other, None) for name, other in others.items()
    }
    problems.install(app)
    for module in (ops, api_keys, channels, post_files, posts, deliveries, imports, webhooks):
        app.include_router(module.router)
    if regional is not None:
        redirects = {
            name: str(region.api_url)
            for name, region in settings.regions.items()
            if name != settings.region and region.api_url is not None and name not in others
        }
        app.add_middleware(
            RegionRouter,
            region=settings.region,
            directory=regional.directory,
            services=app.state.regions,
            redirects=redirects,
            cache_s=settings.api.directory_cache_s,
            home_has=lambda prefix: _holds_key(store, prefix),
        )
    app.add_middleware(MetricsMiddleware, metrics=app.state.services.metrics)
    app.add_middleware(
        BodyLimit,
        default_bytes=settings.api.max_body_bytes,
        by_path={"/v1/posts/import": settings.api.import_max_bytes},
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _holds_key(store: Store, prefix: str) -> bool:
    return await store.api_key_by_prefix(prefix) is not None


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus the ``Problem`` model every error response refers to."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        found = problems.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        extra = found.pop("$defs", {})
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(extra)
        components["Problem"] = found
        app.openapi_schema = schema
    return app.openapi_schema
