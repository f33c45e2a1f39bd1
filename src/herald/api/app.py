"""The application factory: :func:`create_app` wires settings, store and services into FastAPI.

Nothing happens at import time. The store is opened and closed by whoever owns it (the CLI,
a test): the app only uses it. When an engine runs in the same process (``herald serve``),
new and moved deliveries wake it at once and ``/metrics`` includes its registry.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from herald import __version__
from herald.api import problems
from herald.api.deps import Services
from herald.api.guards import BodyLimit
from herald.api.metrics import ApiMetrics, MetricsMiddleware
from herald.api.routers import (
    api_keys,
    channels,
    deliveries,
    ops,
    post_files,
    posts,
    webhooks,
)
from herald.config import Settings
from herald.domain import utcnow
from herald.engine import Engine
from herald.engine.metrics import Metrics
from herald.platforms.rules import VALIDATORS
from herald.service.channels import ChannelService
from herald.service.deliveries import DeliveryActions
from herald.service.posts import PostService
from herald.service.scheduling import Scheduler
from herald.service.subscriptions import WebhookRegistry
from herald.service.tenancy import Tenancy
from herald.service.vault import Vault
from herald.types import Store

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
    engine: Engine | None = None,
    metrics: Metrics | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> FastAPI:
    """The API on ``store`` (already open). Refuses to start without a secret key
    (:class:`~herald.errors.ConfigError`): channel credentials are encrypted with it."""
    vault = Vault.from_settings(settings)
    app = FastAPI(
        title="Herald",
        version=__version__,
        description=_DESCRIPTION,
        openapi_tags=[
            {"name": "posts", "description": "Posts and their deliveries"},
            {"name": "channels", "description": "Social accounts and posting slots"},
        ],
    )
    app.state.services = _services(
        settings, store, vault=vault, engine=engine, metrics=metrics, clock=clock
    )
    problems.install(app)
    for module in (ops, api_keys, channels, post_files, posts, deliveries, webhooks):
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware, metrics=app.state.services.metrics)
    app.add_middleware(
        BodyLimit,
        default_bytes=settings.api.max_body_bytes,
        by_path={"/v1/posts/import": settings.api.import_max_bytes},
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _services(
    settings: Settings,
    store: Store,
    *,
    vault: Vault,
    engine: Engine | None,
    metrics: Metrics | None,
    clock: Callable[[], datetime],
) -> Services:
    notify = None if engine is None else engine.notify
    scheduler = Scheduler(store, settings.api, clock=clock)
    registry = metrics.registry if metrics is not None else None
    if registry is None and engine is not None:
        registry = engine.metrics.registry
    return Services(
        settings=settings,
        store=store,
        tenancy=Tenancy(store, clock=clock),
        channels=ChannelService(store, vault, notify=notify, clock=clock),
        posts=PostService(store, scheduler, VALIDATORS, notify=notify, clock=clock),
        deliveries=DeliveryActions(store, scheduler, notify=notify, clock=clock),
        webhooks=WebhookRegistry(store, vault, clock=clock),
        metrics=ApiMetrics(),
        engine_registry=registry,
    )


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
