"""Builds the running pieces from configuration: the store for a URL, the engine around it.

Kept apart from the CLI so tests, the demo and the API server start Herald the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from herald.backoff import Backoff
from herald.caps.redis import RedisCaps
from herald.config import Settings
from herald.domain import Platform
from herald.egress.policy import EgressPolicy
from herald.engine import Engine, Role
from herald.engine.metrics import Metrics
from herald.engine.versions import VersionWatch
from herald.errors import ConfigError, Conflict, NotFound, WorkspaceBusy
from herald.limits.redis import RedisLimiter
from herald.platforms.registry import build_connectors
from herald.queues.metrics import QueueBacklog
from herald.queues.rabbitmq import RabbitQueue
from herald.queues.redis_streams import RedisStreamQueue
from herald.service.directory_sync import SyncReport
from herald.service.directory_sync import sync_directory as sync_rows
from herald.service.tenancy import Tenancy
from herald.service.vault import VAULT_REF, Vault, build_resolver
from herald.service.webhook_sender import WebhookSender
from herald.stores.directory_postgres import PostgresDirectory
from herald.stores.memory import MemoryStore
from herald.stores.postgres import PostgresStore
from herald.stores.postgres_move import MoveReport, undo_copy
from herald.stores.postgres_move import move_workspace as move_rows
from herald.stores.sqlite import SQLiteStore, sqlite_path
from herald.stores.sqlite_lock import EngineLock
from herald.types import Directory, JobQueue, Regional, Store

__all__ = [
    "move_workspace",
    "open_caps",
    "open_directory",
    "open_limiter",
    "open_queue",
    "open_regions",
    "open_store",
    "open_tenancy",
    "opened_store",
    "run_publishing",
    "running_engine",
    "sync_directory",
    "webhook_sender",
]

log = logging.getLogger("herald.bootstrap")


def open_store(settings: Settings, *, for_engine: bool = False, api: bool = False) -> Store:
    """An unopened store for ``settings.database_url``. ``for_engine``: an engine will run on
    it, so an embedded database takes its engine lock when opened, before it migrates anything:
    a second engine is refused before it touches the schema under the first. ``api``: the API
    will serve from it, so it reads what may lag from ``database.replica_url``, if set."""
    url = settings.database_url
    if url.startswith("sqlite://"):
        return SQLiteStore(
            sqlite_path(url),
            synchronous=settings.engine.sqlite_synchronous,
            engine_lock=for_engine,
        )
    if url.startswith(("postgresql://", "postgres://")):
        # Several engines may share it: running_engine takes no lock and runs them with
        # exclusive=False, so each recovers only the leases that ran out.
        database = settings.database
        return PostgresStore(
            url,
            # Only the API's reads that may lag go to the replica (Store.lagging_reads): an
            # engine decides from the primary alone, and opens no pool on the replica.
            replica_url=database.replica_url if api else None,
            replica_max_lag_s=database.replica_max_lag_s,
            replica_check_s=database.replica_check_s,
        )
    if url.startswith("memory://"):
        return MemoryStore()
    raise ConfigError(f"no store for {url.split(':', 1)[0]!r} URLs in this build")


@asynccontextmanager
async def opened_store(settings: Settings, *, api: bool = False) -> AsyncIterator[Store]:
    """The store of ``settings``, open for the block (the admin commands' and a move's)."""
    store = open_store(settings, api=api)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def open_directory(settings: Settings) -> PostgresDirectory | None:
    """The global directory of a deployment in several regions (unopened), or None."""
    if not settings.regions or settings.directory_url is None:
        return None
    return PostgresDirectory(settings.directory_url)


@asynccontextmanager
async def open_regions(settings: Settings) -> AsyncIterator[Regional | None]:
    """What an API node of a deployment in several regions serves with besides its own
    store, open for the block: the directory, and (``api.other_regions = "serve"``) the
    other regions' stores, reads that may lag from their replicas. None with one region."""
    directory = open_directory(settings)
    if directory is None:
        yield None
        return
    await directory.open()
    try:
        async with contextlib.AsyncExitStack() as stack:
            stores: dict[str, Store] = {}
            if settings.api.other_regions == "serve":
                for name in sorted(set(settings.regions) - {settings.region}):
                    here = settings.in_region(name)
                    stores[name] = await stack.enter_async_context(opened_store(here, api=True))
            yield Regional(directory, stores)
    finally:
        await directory.close()


@asynccontextmanager
async def open_tenancy(
    settings: Settings,
    *,
    region: str | None = None,
    workspace_id: str | None = None,
    key_id: str | None = None,
) -> AsyncIterator[Tenancy]:
    """Workspaces and keys, for the admin commands, on the database that holds them: with
    one region, ``database_url``'s; with several, ``region``'s, else the region the directory
    names for ``workspace_id`` or ``key_id`` (:class:`~herald.errors.NotFound` if it names
    none), the directory told of every change."""
    directory = open_directory(settings)
    if directory is None:
        if region is not None:
            settings.in_region(region)  # one region: refused unless it is the deployment's
        async with opened_store(settings) as store:
            yield Tenancy(store)
        return
    await directory.open()
    try:
        if region is None:
            region = await _region_of(directory, workspace_id, key_id)
        async with opened_store(settings.in_region(region)) as store:
            yield Tenancy(store, directory=directory, region=region)
    finally:
        await directory.close()


async def _region_of(directory: Directory, workspace_id: str | None, key_id: str | None) -> str:
    if key_id is not None:
        key = await directory.key_by_id(key_id)
        if key is None:
            raise NotFound("api key", key_id)
        return key.region
    if workspace_id is None:
        raise ConfigError("name the region, the workspace or the key")
    home = await directory.workspace(workspace_id)
    if home is None:
        raise NotFound("workspace", workspace_id)
    return home.region


async def move_workspace(
    settings: Settings,
    workspace_id: str,
    to: str,
    *,
    wait_s: float,
    abort: bool = False,
    on_busy: Callable[[int], None] | None = None,
) -> MoveReport | None:
    """Move a workspace to region ``to``: marked moving in the directory (its API requests
    refused), copied, deleted where it was, then its home is ``to``
    (:mod:`herald.stores.postgres_move`). Run again after an interruption, it carries on.
    ``abort``: give up a move that has not passed its point of no return (None then)."""
    directory = open_directory(settings)
    if directory is None:
        raise ConfigError("moving a workspace needs a deployment in several regions (regions)")
    settings.in_region(to)  # ConfigError for a region the deployment lacks
    await directory.open()
    try:
        async with directory.move_lock(workspace_id):
            return await _move(
                settings, directory, workspace_id, to, wait_s=wait_s, abort=abort, on_busy=on_busy
            )
    finally:
        await directory.close()


async def _move(
    settings: Settings,
    directory: Directory,
    workspace_id: str,
    to: str,
    *,
    wait_s: float,
    abort: bool,
    on_busy: Callable[[int], None] | None,
) -> MoveReport | None:
    """A run of a move, under its lock (see :func:`move_workspace`)."""
    home = await directory.workspace(workspace_id)
    if home is None:
        raise NotFound("workspace", workspace_id)
    if abort:
        if home.moving_to is None:
            raise Conflict(f"workspace {workspace_id!r} is not being moved")
        async with _two_stores(settings, home.region, home.moving_to) as (source, target):
            if not await undo_copy(source, target, workspace_id):
                raise Conflict(
                    f"workspace {workspace_id!r} is already deleted from {home.region}: "
                    "the move cannot be undone; run it again to finish it"
                )
        await directory.end_move(workspace_id, moved=False)
        log.warning("workspace.move_aborted", extra={"workspace_id": workspace_id})
        return None
    await directory.begin_move(workspace_id, to)
    log.warning(
        "workspace.move_begun",
        extra={"workspace_id": workspace_id, "from": home.region, "to": to},
    )
    # Every API node keeps a key's region this long: after it, all of them refuse the
    # workspace's requests, and nothing more is written to the copy being left.
    await asyncio.sleep(settings.api.directory_cache_s + 1.0)
    async with _two_stores(settings, home.region, to) as (source, target):
        try:
            report = await move_rows(
                source, target, workspace_id, to=to, wait_s=wait_s, on_busy=on_busy
            )
        except WorkspaceBusy:
            await directory.end_move(workspace_id, moved=False)  # nothing was copied
            raise
    await directory.end_move(workspace_id, moved=True)
    log.warning(
        "workspace.move_done",
        extra={"workspace_id": workspace_id, "to": to, "rows": sum(report.rows.values())},
    )
    return report


async def sync_directory(settings: Settings, region: str | None = None) -> list[SyncReport]:
    """Bring the directory in line with ``region``'s database (every region's: None)."""
    directory = open_directory(settings)
    if directory is None:
        raise ConfigError("the directory is for a deployment in several regions (regions)")
    names = [region] if region is not None else sorted(settings.regions)
    for name in names:
        settings.in_region(name)  # an unknown region is refused before anything is read
    await directory.open()
    reports = []
    try:
        for name in names:
            async with opened_store(settings.in_region(name)) as store:
                reports.append(await sync_rows(store, directory, name))
    finally:
        await directory.close()
    return reports


@asynccontextmanager
async def _two_stores(
    settings: Settings, source: str, target: str
) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    async with contextlib.AsyncExitStack() as stack:
        opened = []
        for name in (source, target):
            store = await stack.enter_async_context(opened_store(settings.in_region(name)))
            if not isinstance(store, PostgresStore):
                raise ConfigError(f"region {name}'s database is not PostgreSQL")
            opened.append(store)
        yield opened[0], opened[1]


def open_limiter(settings: Settings) -> RedisLimiter | None:
    """The shared limiter ``limits`` asks for, or None: the engine keeps its limits in memory."""
    limits = settings.limits
    if limits.backend == "memory":
        return None
    if limits.redis_url is None:
        raise ConfigError(
            "limits.backend 'redis' needs limits.redis_url (HERALD_LIMITS__REDIS_URL)"
        )
    return RedisLimiter.from_url(
        limits.redis_url, prefix=limits.redis_prefix, timeout_s=limits.redis_timeout_s
    )


def open_queue(
    settings: Settings,
    *,
    platforms: Collection[Platform] = (),
    region: str | None = None,
    on_redelivered: Callable[[int], None] | None = None,
) -> RedisStreamQueue | RabbitQueue:
    """The broker ``broker.url`` names, reading the jobs of ``platforms`` in ``region`` (none:
    a dispatcher's, which only puts, routing each job by its platform and channel's region).
    ``on_redelivered`` is told of the jobs handed out again after their consumer went away."""
    url = settings.broker.url
    if url is None:
        raise ConfigError("a dispatcher or worker needs broker.url (--broker, HERALD_BROKER__URL)")
    region = region or settings.region
    prefetch = settings.worker_prefetch(platforms)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStreamQueue(
            url,
            platforms=platforms,
            region=region,
            max_len=settings.broker.max_queued * 10,
            # Well within the claims' hand-off lease, so that a dead worker's unadopted jobs
            # are taken over by another before the dispatcher has to claim them again.
            claim_idle_s=settings.broker.handoff_s / 3,
            # A worker reads what its intake may hold in one round trip.
            read_count=prefetch,
            on_redelivered=on_redelivered,
        )
    if url.startswith(("amqp://", "amqps://")):
        return RabbitQueue(
            url,
            platforms=platforms,
            region=region,
            # What the worker holds is its intake's to bound; the broker's window (messages
            # of up to 8 jobs) is four times that in jobs, 16 per request the worker may have
            # in flight, hence two messages per request: when the load is light and messages
            # hold one job, jobs held for a rate limit or a cap, being written or with their
            # ack lingering do not leave the requests without a message; when a burst of full
            # messages comes, a worker holds at most four intakes' worth (128 Facebook jobs:
            # 16 s of work at a second a request, well within the hand-off lease).
            prefetch=4 * prefetch,
            on_redelivered=on_redelivered,
        )
    raise ConfigError(f"no broker for {url.split(':', 1)[0]!r} URLs in this build")


def open_caps(settings: Settings) -> RedisCaps | None:
    """The shared concurrency caps ``limits`` asks for (beside the shared limiter, on a client
    of its own: the caller closes it), or None: the engine keeps its caps in memory."""
    limits = settings.limits
    if limits.backend == "memory" or limits.redis_url is None:
        return None
    # As the limiter's: a lost connection (a restart) is tried twice more, briefly.
    client = aioredis.Redis.from_url(
        limits.redis_url,
        socket_timeout=limits.redis_timeout_s,
        socket_connect_timeout=limits.redis_timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
    )
    return RedisCaps(client, prefix=limits.caps_prefix, lease_s=limits.cap_lease_s)


@asynccontextmanager
async def running_engine(
    settings: Settings,
    store: Store | None = None,
    *,
    role: Role = "all",
    platforms: Collection[Platform] | None = None,
) -> AsyncIterator[Engine]:
    """An engine on an opened store with real connectors; everything closed on exit.

    ``role`` (see :class:`herald.engine.Engine`): a dispatcher or a worker talks to the broker
    of ``settings.broker``; a worker publishes to ``platforms`` only (None: every one)."""
    own_store = store is None
    store = store or open_store(settings, for_engine=role == "all")
    exclusive = isinstance(store, SQLiteStore)  # one engine per embedded database
    if role != "all" and exclusive:
        raise ConfigError("a dispatcher and its workers share a PostgreSQL database, not SQLite")
    publishes = role != "dispatcher"
    async with contextlib.AsyncExitStack() as closing:  # closes in the reverse order
        if isinstance(store, SQLiteStore) and not store.holds_engine_lock:
            lock = EngineLock(store.path)
            lock.acquire()
            closing.callback(lock.release)
        if own_store:
            closing.push_async_callback(store.close)
        chosen = set(Platform) if platforms is None else set(platforms)
        # Every platform's connector prices the sends a limiter rebuild replays; only the
        # chosen ones publish. None opens a connection before its first request.
        metrics = Metrics(role=role)
        versions = VersionWatch(settings, metrics)
        every = build_connectors(settings, versions=versions) if publishes else {}
        for connector in every.values():
            closing.push_async_callback(connector.aclose)
        queue = _broker_queue(settings, role, [p for p in every if p in chosen], metrics)
        if queue is not None:
            closing.push_async_callback(queue.close)
        limiter = open_limiter(settings) if publishes else None
        if limiter is not None:
            closing.push_async_callback(limiter.aclose)
        caps = open_caps(settings) if publishes else None
        if caps is not None:
            closing.push_async_callback(caps.client.aclose)
        if own_store:
            await store.open()
        engine = Engine(
            settings,
            store,
            {p: c for p, c in every.items() if p in chosen},
            exclusive=exclusive,
            credentials=build_resolver(settings, store),
            limiter=limiter,
            queue=queue,
            metrics=metrics,
            role=role,
            priced_by=every,
            caps=caps,
            versions=versions,
        )
        # Start-up reads wait out a store that is away (restarting, cutting sessions) as
        # every later call does: an engine started meanwhile must not exit for it.
        if publishes:  # the dispatcher never reads a channel's secrets
            await _vault_usable(settings, engine, store)
        if isinstance(store, PostgresStore) and role != "worker":
            # Posts added by API processes or other machines wake this engine at once.
            listen = store.listen
            listener = await engine.health.until_answered("start", lambda: listen(engine.notify))
            closing.push_async_callback(listener.close)
        yield engine


def _broker_queue(
    settings: Settings, role: Role, platforms: Collection[Platform], metrics: Metrics
) -> JobQueue | None:
    """A dispatcher's or a worker's broker (None: the engine's own queue in memory), whose
    ``herald_queue_backlog{platform,region}`` is what an autoscaler sizes workers by."""
    if role == "all":
        return None
    republished = metrics.lease_recoveries.labels("republished")
    queue = open_queue(
        settings,
        platforms=platforms if role == "worker" else (),
        region=settings.region,
        on_redelivered=republished.inc,
    )
    QueueBacklog(queue).register(metrics.registry)
    return queue


async def _vault_usable(settings: Settings, engine: Engine, store: Store) -> None:
    """The engine needs a secret key only when a channel keeps its credentials in the vault;
    then starting without one is refused rather than parking every such channel."""
    if settings.secret_keys:
        return
    channels = await engine.health.until_answered("start", store.list_channels)
    if any(c.credentials_ref == VAULT_REF for c in channels):
        raise ConfigError(
            "channels keep their credentials encrypted in the store: set HERALD_SECRET_KEYS "
            "(the keys the API uses)"
        )


def webhook_sender(
    settings: Settings, store: Store, engine: Engine | None = None
) -> WebhookSender | None:
    """A sender for the store's webhook outbox, woken by ``engine`` when it records events.

    None without a secret key: webhook secrets are encrypted, so nothing could be signed.
    Events then wait in the outbox until a process with the key sends them.
    """
    if not settings.secret_keys:
        log.warning("webhooks.disabled", extra={"reason": "no secret key (HERALD_SECRET_KEYS)"})
        return None
    engine_settings = settings.engine
    store_backoff = Backoff(
        base_s=engine_settings.store_backoff_base_s, cap_s=engine_settings.store_backoff_cap_s
    )
    sender = WebhookSender(
        store,
        Vault.from_settings(settings),
        settings.webhooks,
        store_backoff=store_backoff,
        egress=EgressPolicy.from_settings(settings.egress),
        registry=None if engine is None else engine.metrics.registry,
    )
    if engine is not None:
        engine.on_events(sender.notify)
    return sender


async def run_publishing(
    engine: Engine,
    sender: WebhookSender | None,
    *,
    burst: bool = False,
    burst_horizon_s: float = 60.0,
) -> None:
    """Run the engine and the webhook sender side by side (each its own tasks, so a slow
    receiver never holds up publishing) until the engine stops; in burst mode the sender
    then sends what is left before returning."""
    if sender is None:
        await engine.run(burst=burst, burst_horizon_s=burst_horizon_s)
        return
    sending = asyncio.create_task(sender.run(), name="herald-webhooks")
    try:
        await engine.run(burst=burst, burst_horizon_s=burst_horizon_s)
    except BaseException:
        sender.request_stop()
        raise
    finally:
        if burst:
            sender.drain()
        else:
            sender.request_stop()
        await sending
