"""Serving the API in this process: alone (``herald api``), or beside the engine and the
webhook sender (``herald serve``, the single-box deployment).

Uvicorn runs inside Herald's event loop. Its own signal handling is switched off: one stop
(SIGINT/SIGTERM, installed by the caller) ends everything gracefully and in order: the API
stops accepting requests and finishes those in flight, the engine stops claiming and lets its
requests in flight finish (``engine.shutdown_grace_s``), the webhook sender does the same;
CSV imports still running are stopped and given up (the next process to sweep removes what
they stored, or finishes the ones that had stored everything); then the store is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Generator

import uvicorn

from herald.api import create_app
from herald.bootstrap import (
    open_regions,
    open_store,
    run_publishing,
    running_engine,
    webhook_sender,
)
from herald.config import Settings
from herald.engine import Engine
from herald.platforms.rules import VALIDATORS
from herald.service.ops_metrics import ProcessRole, StoreGauges, process_info
from herald.service.webhook_sender import WebhookSender
from herald.types import Regional, Store

__all__ = ["InstallStop", "serve"]

#: Registers the function that stops everything (the CLI binds it to SIGINT and SIGTERM).
InstallStop = Callable[[Callable[[], None]], None]

log = logging.getLogger("herald.server")


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handlers: Herald stops it together with the rest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _server(app: object, settings: Settings, host: str | None, port: int | None) -> _Server:
    host, port = host or settings.api.host, port or settings.api.port
    log.info("api.listening", extra={"host": host, "port": port})
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
    )
    return _Server(config)


async def serve(
    settings: Settings,
    *,
    install_stop: InstallStop,
    with_engine: bool,
    host: str | None = None,
    port: int | None = None,
) -> None:
    """Serve the API until stopped: alone (new posts reach an engine in another process, such
    as ``herald run``, within its ``engine.idle_recheck_s``), or ``with_engine``: the engine
    and the webhook sender beside it on the same store, woken at once by new posts."""
    store = open_store(settings, for_engine=with_engine, api=True)
    await store.open()
    try:
        async with open_regions(settings) as regional:
            if with_engine:
                async with running_engine(settings, store) as engine:
                    await _until_stopped(
                        settings, store, engine, install_stop, regional, host=host, port=port
                    )
            else:
                await _until_stopped(
                    settings, store, None, install_stop, regional, host=host, port=port
                )
    finally:
        await store.close()
    log.info("server.stopped")


async def _until_stopped(
    settings: Settings,
    store: Store,
    engine: Engine | None,
    install_stop: InstallStop,
    regional: Regional | None,
    *,
    host: str | None,
    port: int | None,
) -> None:
    """The API, and the engine and its webhook sender when ``engine`` is given, until one
    stop ends them all (or one of them ends, and the others with it)."""
    sender = None if engine is None else webhook_sender(settings, store, engine)
    # Beside an engine, the store-wide gauges go on its registry: a failed read counts in its
    # herald_store_unavailable_total (a scrape shows each family once).
    gauges = None
    if engine is not None:
        unavailable = engine.metrics.store_unavailable
        gauges = StoreGauges(store, engine.metrics.registry, unavailable=unavailable)
    app = create_app(
        settings,
        store,
        validators=VALIDATORS,
        notify=None if engine is None else engine.notify,
        engine_registry=None if engine is None else engine.metrics.registry,
        engine_ready=None if engine is None else (lambda: engine.ready),
        store_gauges=gauges,
        regional=regional,
    )
    role: ProcessRole = "api" if engine is None else "serve"
    process_info(app.state.services.metrics.registry, role, settings.region)
    server = _server(app, settings, host, port)
    # What exists now (modules, the app, the settings) lives as long as the process: out of
    # the cyclic collector's reach, a full collection (which a big import's allocations
    # trigger every few seconds) scans only what was made since. Measured in an API process
    # importing a file: one pause of 28 ms per full collection before, none above 8 ms after.
    gc.freeze()
    # CSV imports run beside the requests; stopping gives their jobs up to the next sweep
    # (this deployment's next process, or another one), which cleans up or finishes them.
    # Each region served from here has its own: an import runs on its workspace's database.
    runners = [app.state.services.imports.runner]
    runners += [services.imports.runner for services in app.state.regions.values()]
    async with contextlib.AsyncExitStack() as stack:
        for runner in runners:
            await runner.start()
            stack.push_async_callback(runner.close)
        await _serve(server, engine, sender, install_stop)


async def _serve(
    server: _Server, engine: Engine | None, sender: WebhookSender | None, install_stop: InstallStop
) -> None:
    def stop() -> None:
        server.should_exit = True
        if engine is not None:
            engine.request_stop()
        if sender is not None:
            sender.request_stop()

    install_stop(stop)
    if engine is None:
        await server.serve()
        return
    publishing = asyncio.create_task(run_publishing(engine, sender), name="herald-publish")
    serving = asyncio.create_task(server.serve(), name="herald-api")
    await asyncio.wait({publishing, serving}, return_when=asyncio.FIRST_COMPLETED)
    stop()  # one part ended (a stop, or a crash): end the other one too
    await asyncio.gather(publishing, serving)
