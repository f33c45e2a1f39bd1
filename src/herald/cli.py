"""The ``herald`` command line. ``asyncio.run`` lives here and nowhere else.

Every option has an environment twin (shown in ``--help``); engine and platform settings come
from ``HERALD_*`` variables (see :mod:`herald.config`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import signal
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console

from herald.config import Settings
from herald.domain import Platform
from herald.errors import HeraldError
from herald.logs import configure_logging

if TYPE_CHECKING:
    from herald.engine import Role
    from herald.service.tenancy import IssuedKey
    from herald.types import Store

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="herald",
    help="Schedule and publish social-media posts: never lost, never twice, within every limit.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)
admin = typer.Typer(
    name="admin",
    help="Workspaces, API keys and the keys that encrypt secrets at rest.",
    no_args_is_help=True,
)
app.add_typer(admin)
optimize = typer.Typer(
    name="optimize",
    help="Best time to post: evaluate the engagement model (needs herald[optimizer]).",
    no_args_is_help=True,
)
app.add_typer(optimize)

DbOption = Annotated[Path | None, typer.Option(help="SQLite database file.", envvar="HERALD_DB")]
UrlOption = Annotated[str | None, typer.Option(help="Database URL.", envvar="HERALD_DATABASE_URL")]
HostOption = Annotated[
    str | None, typer.Option(help="Listen on this address.", envvar="HERALD_API__HOST")
]
PortOption = Annotated[
    int | None, typer.Option(help="Listen on this port.", envvar="HERALD_API__PORT")
]


def _settings(db: Path | None, database_url: str | None) -> Settings:
    """Settings from the environment, on the database the command line names (if it does)."""
    database_url = _database_url(db, database_url)
    try:
        return Settings() if database_url is None else Settings(database_url=database_url)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        err.print("[red]invalid configuration:[/]\n" + "\n".join(lines))
        raise typer.Exit(2) from exc
    except SettingsError as exc:
        # A variable that must be JSON (HERALD_REGIONS...) and is not: pydantic-settings
        # names it in the message, and its cause says what is wrong in it.
        err.print(f"[red]invalid configuration:[/] {exc}: {exc.__cause__ or ''}")
        raise typer.Exit(2) from exc


def _database_url(db: Path | None, database_url: str | None) -> str | None:
    if db is not None and database_url is not None:
        err.print("[red]give --db or --database-url, not both[/]")
        raise typer.Exit(2)
    if db is not None:
        return f"sqlite:///{db}"
    return database_url


def _install_stop(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)


ProbeOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=65535,
        help="Serve /healthz, /readyz and /metrics on this port (engine.probe_host).",
        envvar="HERALD_ENGINE__PROBE_PORT",
    ),
]
RegionOption = Annotated[
    str | None,
    typer.Option(
        help="This process's region: it publishes that region's deliveries only (with "
        "regions, from that region's database). Default: the deployment's region.",
        envvar="HERALD_REGION",
    ),
]
RedisOption = Annotated[
    str | None,
    typer.Option(
        help="Share rate limits with every engine using this Redis (limits.backend=redis).",
        envvar="HERALD_LIMITS__REDIS_URL",
    ),
]
BrokerOption = Annotated[
    str | None,
    typer.Option(
        help="The broker: redis://host:port/db (Redis Streams) or amqp://user:pass@host/vhost.",
        envvar="HERALD_BROKER__URL",
    ),
]


def _shared_limits(settings: Settings, redis_url: str | None) -> None:
    if redis_url is not None:
        settings.limits = settings.limits.model_validate(
            {**settings.limits.model_dump(), "backend": "redis", "redis_url": redis_url}
        )


def _engine_process(
    settings: Settings,
    *,
    role: Role = "all",
    platforms: list[Platform] | None = None,
    burst: bool = False,
) -> None:
    """Run one engine process (``role``) until SIGINT/SIGTERM, with its probe and, where it
    records outcomes, the webhook sender."""
    configure_logging(settings.log_level, settings.log_format)
    # heavy imports only for the engine's commands
    from herald.bootstrap import open_store, run_publishing, running_engine, webhook_sender
    from herald.probe import serving_probe
    from herald.service.ops_metrics import StoreGauges, process_info

    async def main() -> None:
        # Opened here, not by running_engine: the webhook sender needs the whole store, and
        # the engine sees only its engine face.
        store = open_store(settings, for_engine=role == "all")
        await store.open()
        try:
            async with (
                running_engine(settings, store, role=role, platforms=platforms) as engine,
                contextlib.AsyncExitStack() as on,
            ):
                # A dispatcher records no outcome, so it has no events to send.
                sender = webhook_sender(settings, store, engine) if role != "dispatcher" else None
                registry = engine.metrics.registry
                process_info(registry, "run" if role == "all" else role, settings.region)
                gauges = None
                if role != "worker":  # a worker sees its platforms' jobs, not the whole store
                    unavailable = engine.metrics.store_unavailable
                    gauges = StoreGauges(store, registry, unavailable=unavailable)
                port = settings.engine.probe_port
                if port is not None:
                    probe = serving_probe(
                        lambda: engine.ready,
                        registry,
                        host=settings.engine.probe_host,
                        port=port,
                        before_scrape=None if gauges is None else gauges.refresh,
                    )
                    await on.enter_async_context(probe)

                def stop() -> None:
                    engine.request_stop()
                    if sender is not None:
                        sender.request_stop()

                _install_stop(stop)
                await run_publishing(engine, sender, burst=burst)
        finally:
            await store.close()

    _run(main())


@app.command()
def run(
    db: DbOption = None,
    database_url: UrlOption = None,
    burst: Annotated[
        bool, typer.Option(help="Stop once nothing is left to do.", envvar="HERALD_BURST")
    ] = False,
    probe_port: ProbeOption = None,
    redis_url: RedisOption = None,
) -> None:
    """Run the publishing engine on an existing database until SIGINT/SIGTERM."""
    settings = _settings(db, database_url)
    if probe_port is not None:
        settings.engine.probe_port = probe_port
    _shared_limits(settings, redis_url)
    _engine_process(settings, burst=burst)


@app.command()
def dispatcher(
    database_url: UrlOption = None,
    broker: BrokerOption = None,
    region: RegionOption = None,
    probe_port: ProbeOption = None,
) -> None:
    """Claim due deliveries and hand them to workers through the broker, routed by platform
    and region, until SIGINT/SIGTERM (the distributed mode: docs/architecture.md). With
    regions, it claims from its region's database only."""
    settings = _distributed_settings(database_url, broker, probe_port, region)
    _engine_process(settings, role="dispatcher")


@app.command()
def worker(
    *,
    database_url: UrlOption = None,
    broker: BrokerOption = None,
    platforms: Annotated[
        str | None,
        typer.Option(
            help="Publish to these platforms only, e.g. facebook,instagram (default: all).",
            envvar="HERALD_WORKER_PLATFORMS",
        ),
    ] = None,
    region: RegionOption = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Requests in flight at once per platform in this process (default: each "
            "platform's concurrency).",
            envvar="HERALD_WORKER_CONCURRENCY",
        ),
    ] = None,
    redis_url: RedisOption = None,
    probe_port: ProbeOption = None,
) -> None:
    """Take jobs of some platforms and one region off the broker and publish them, within
    limits shared through Redis with every other worker, until SIGINT/SIGTERM."""
    settings = _distributed_settings(database_url, broker, probe_port, region)
    chosen = _platforms(platforms)
    if concurrency is not None:
        for platform in chosen:
            settings.platform(platform).concurrency = concurrency
    broker_url = settings.broker.url or ""
    if redis_url is None and settings.limits.backend == "memory":
        if not broker_url.startswith(("redis://", "rediss://", "unix://")):
            err.print(
                "[red]a worker shares its rate limits with the others through Redis: give "
                "--redis-url (HERALD_LIMITS__REDIS_URL)[/]"
            )
            raise typer.Exit(2)
        redis_url = broker_url  # one Redis for the queue and the limits
    _shared_limits(settings, redis_url)
    _engine_process(settings, role="worker", platforms=chosen)


def _distributed_settings(
    database_url: str | None, broker: str | None, probe_port: int | None, region: str | None
) -> Settings:
    settings = _settings(None, database_url)
    if region is not None and settings.regions:
        try:
            settings = settings.in_region(region)  # its database, not the home region's
        except HeraldError as exc:
            err.print(f"[red]--region: {exc}[/]")
            raise typer.Exit(2) from exc
    elif region is not None:
        # One database: the region only routes (which channels' deliveries it takes).
        settings = _revalidated(settings, region=region)
    if probe_port is not None:
        settings.engine.probe_port = probe_port
    if broker is not None:
        settings = _revalidated(settings, broker={**settings.broker.model_dump(), "url": broker})
    if settings.broker.url is None:
        err.print("[red]give the broker: --broker (HERALD_BROKER__URL)[/]")
        raise typer.Exit(2)
    if not settings.database_url.startswith(("postgresql://", "postgres://")):
        err.print(
            "[red]the dispatcher and its workers share a PostgreSQL database: give "
            "--database-url postgresql://...[/]"
        )
        raise typer.Exit(2)
    return settings


def _revalidated(settings: Settings, **changes: Any) -> Settings:
    """``settings`` with ``changes``, validated as if they came from the environment."""
    try:
        return Settings.model_validate({**settings.model_dump(), **changes})
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        err.print("[red]invalid configuration:[/]\n" + "\n".join(lines))
        raise typer.Exit(2) from exc


def _platforms(text: str | None) -> list[Platform]:
    if text is None:
        return list(Platform)
    names = [part.strip() for part in text.split(",") if part.strip()]
    known = {p.value: p for p in Platform}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        err.print(
            f"[red]--platforms: unknown {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(known)}[/]"
        )
        raise typer.Exit(2)
    return [known[name] for name in dict.fromkeys(names)]


@app.command()
def migrate(db: DbOption = None, database_url: UrlOption = None) -> None:
    """Create the database or bring its schema up to date (with regions: every region's
    database, and the directory's tables)."""
    settings = _settings(db, database_url)
    from herald.bootstrap import open_directory, open_store

    async def main() -> None:
        regions = sorted(settings.regions) or [settings.region]
        for name in regions:
            store = open_store(settings.in_region(name))
            await store.open()
            await store.close()
        directory = open_directory(settings)
        if directory is not None:
            await directory.open()  # creates its tables if missing
            await directory.close()

    _run(main())
    err.print("schema up to date")


@app.command()
def simulate(
    config: Annotated[
        Path | None,
        typer.Option(help="Simulator configuration (JSON).", envvar="HERALD_SIMULATOR_CONFIG"),
    ] = None,
    host: Annotated[str, typer.Option(envvar="HERALD_SIMULATOR_HOST")] = "127.0.0.1",
    port: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=PORT for facebook, instagram, linkedin, youtube or admin (default: free).",
            envvar="HERALD_SIMULATOR_PORTS",
        ),
    ] = None,
) -> None:
    """Serve the platform simulator until SIGINT/SIGTERM; print its URLs as one JSON line."""
    from herald.simulator.__main__ import main as simulator_main

    argv = [str(config)] if config is not None else []
    argv += ["--host", host]
    for item in port or []:
        argv += ["--port", item]
    raise typer.Exit(simulator_main(argv))


@app.command()
def demo(
    posts: Annotated[
        int, typer.Option(min=1, help="Posts to schedule.", envvar="HERALD_DEMO_POSTS")
    ] = 500,
    faults: Annotated[
        bool, typer.Option(help="Inject platform faults.", envvar="HERALD_DEMO_FAULTS")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary as JSON.", envvar="HERALD_DEMO_JSON")
    ] = False,
    seed: Annotated[int, typer.Option(envvar="HERALD_DEMO_SEED")] = 7,
    db: Annotated[
        Path | None,
        typer.Option(help="Keep the demo database here.", envvar="HERALD_DEMO_DB"),
    ] = None,
) -> None:
    """Start the simulator and the embedded engine, publish posts, print what happened."""
    from herald.demo.runner import DemoOptions, run_demo

    options = DemoOptions(posts=posts, faults=faults, as_json=as_json, seed=seed, db=db)
    summary = _run(run_demo(options))
    if as_json:
        print(json.dumps(summary.as_dict()))
    if not summary.ok:
        raise typer.Exit(1)


def _chaos(help_text: str, env: str, *, min: float | None = None) -> Any:
    """An option of ``herald chaos``, with its environment twin ``HERALD_CHAOS_<env>``."""
    return typer.Option(help=help_text, envvar=f"HERALD_CHAOS_{env}", min=min)


@app.command()
def chaos(
    *,
    deliveries: Annotated[int, _chaos("Deliveries to schedule.", "DELIVERIES", min=1)] = 2000,
    store: Annotated[str, _chaos("postgres or sqlite.", "STORE")] = "postgres",
    database_url: Annotated[
        str,
        _chaos("PostgreSQL server (a schema of the run's own, dropped after).", "DATABASE_URL"),
    ] = "postgresql://postgres@127.0.0.1:5432/test",
    redis_url: Annotated[
        str, _chaos("Redis the engines share their limits through (PostgreSQL).", "REDIS_URL")
    ] = "redis://127.0.0.1:6379/0",
    engines: Annotated[int, _chaos("Engines at once (one on SQLite).", "ENGINES", min=1)] = 2,
    broker: Annotated[
        str,
        _chaos(
            "none: herald run engines; redis or rabbitmq: a dispatcher and workers through a "
            "broker of the run's own (PostgreSQL).",
            "BROKER",
        ),
    ] = "none",
    workers: Annotated[int, _chaos("Workers at once, with a broker.", "WORKERS", min=1)] = 3,
    seed: Annotated[int, _chaos("Seeds the workload, faults and kills.", "SEED")] = 1,
    spread_s: Annotated[float, _chaos("Posts fall due over this long.", "SPREAD_S", min=0)] = 60.0,
    kill_every_s: Annotated[
        float,
        _chaos(
            "A random engine (with a broker: worker) is SIGKILLed this often.",
            "KILL_EVERY_S",
            min=0.5,
        ),
    ] = 2.5,
    terminate_every_s: Annotated[
        float,
        _chaos("Engine database sessions cut this often (0: never).", "TERMINATE_EVERY_S", min=0),
    ] = 7.0,
    outage_s: Annotated[
        float, _chaos("A platform refuses connections this long (0: none).", "OUTAGE_S", min=0)
    ] = 60.0,
    outage_platform: Annotated[str, _chaos("The platform taken down.", "OUTAGE_PLATFORM")] = (
        "linkedin"
    ),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the verdict as JSON.", envvar="HERALD_CHAOS_JSON")
    ] = False,
) -> None:
    """Run engines under faults (kills, database sessions cut, a platform down, tight quotas;
    with a broker also a dispatcher kill, a broker and a Redis restart) and judge from both
    ends; exit 1 unless nothing was lost, duplicated or over a limit."""
    from herald.demo.chaos import ChaosOptions, run_chaos
    from herald.domain import Platform

    configure_logging("ERROR")
    try:
        options = ChaosOptions(
            deliveries=deliveries,
            store=store,
            database_url=database_url,
            redis_url=redis_url,
            engines=engines,
            broker=broker,
            workers=workers,
            seed=seed,
            spread_s=spread_s,
            kill_every_s=kill_every_s,
            terminate_every_s=terminate_every_s,
            outage_s=outage_s,
            outage_platform=Platform(outage_platform),
            as_json=as_json,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    verdict = _run(run_chaos(options))
    if as_json:
        print(json.dumps(verdict.as_dict()))
    else:
        for key, value in verdict.as_dict().items():
            print(f"{key:>18}  {value}")
    if not verdict.ok:
        raise typer.Exit(1)


def _server_command(*, with_engine: bool, doc: str) -> Callable[..., None]:
    """``herald api`` and ``herald serve`` take the same options; one runs an engine too."""

    def command(
        db: DbOption = None,
        database_url: UrlOption = None,
        host: HostOption = None,
        port: PortOption = None,
    ) -> None:
        settings = _settings(db, database_url)
        configure_logging(settings.log_level, settings.log_format)
        from herald.server import serve

        serving = serve(
            settings, install_stop=_install_stop, with_engine=with_engine, host=host, port=port
        )
        _run(serving)

    command.__doc__ = doc  # the command's --help
    return command


app.command("api")(
    _server_command(
        with_engine=False,
        doc="Serve the REST API only (an engine runs elsewhere: `herald run`), until "
        "SIGINT/SIGTERM.",
    )
)
app.command("serve")(
    _server_command(
        with_engine=True,
        doc="Serve the API with the engine and the webhook sender in one process, until "
        "SIGINT/SIGTERM.\n\nThe single-box deployment; a signal stops all three gracefully.",
    )
)


@app.command()
def healthcheck(
    port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Ask this port (default: the probe port if one is set, else the API port).",
            envvar="HERALD_HEALTHCHECK_PORT",
        ),
    ] = None,
    path: Annotated[
        str,
        typer.Option(
            help="Ask this path (the simulator's is /_sim/health).",
            envvar="HERALD_HEALTHCHECK_PATH",
        ),
    ] = "/healthz",
    timeout_s: Annotated[
        float,
        typer.Option(
            min=0.1, help="Give up after this long.", envvar="HERALD_HEALTHCHECK_TIMEOUT_S"
        ),
    ] = 3.0,
) -> None:
    """Exit 0 if this container's Herald process answers /healthz, else 1 (the image's
    HEALTHCHECK: the slim image has no curl)."""
    from herald.healthcheck import check, target

    try:
        settings = Settings()
    except ValidationError as exc:
        # 1, not 2: a container health check's only failing code (2 is reserved).
        err.print(f"unhealthy: invalid configuration ({exc.error_count()} errors)")
        raise typer.Exit(1) from exc
    except SettingsError as exc:
        err.print(f"unhealthy: invalid configuration ({exc})")
        raise typer.Exit(1) from exc
    if not path.startswith("/"):
        err.print("[red]--path must start with /[/]")
        raise typer.Exit(1)
    where = dataclasses.replace(target(settings, port=port), path=path)
    problem = check(where, timeout_s=timeout_s)
    if problem is not None:
        err.print(f"unhealthy: {problem}")
        raise typer.Exit(1)


async def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    from herald.bootstrap import opened_store

    async with opened_store(settings) as store:
        return await work(store)


@admin.command("create-workspace")
def create_workspace(
    name: Annotated[str, typer.Argument(help="The workspace's name.")],
    key_name: Annotated[
        str, typer.Option(help="Name of its first API key.", envvar="HERALD_KEY_NAME")
    ] = "first key",
    region: Annotated[
        str | None,
        typer.Option(
            help="Its home region: everything of it lives in that region's database "
            "(default: the deployment's region).",
        ),
    ] = None,
    db: DbOption = None,
    database_url: UrlOption = None,
) -> None:
    """Make a workspace and its first API key; the key is printed alone on the last line."""
    from herald.bootstrap import open_tenancy

    settings = _settings(db, database_url)
    home = region or settings.region

    async def create() -> IssuedKey:
        async with open_tenancy(settings, region=home) as tenancy:
            return await tenancy.create_workspace(name, key_name=key_name)

    issued = _run(create())
    print(f"workspace: {issued.key.workspace_id}")
    print(f"region: {home}")
    print(f"key id: {issued.key.id} (the key below is shown once)")
    print(issued.token)


@admin.command("create-key")
def create_key(
    workspace_id: Annotated[str, typer.Argument(help="The workspace's id (ws_...).")],
    name: Annotated[str, typer.Option(help="The key's name.", envvar="HERALD_KEY_NAME")] = "key",
    db: DbOption = None,
    database_url: UrlOption = None,
) -> None:
    """Make another API key for a workspace; the key is printed alone on the last line."""
    from herald.bootstrap import open_tenancy

    settings = _settings(db, database_url)

    async def issue() -> IssuedKey:
        async with open_tenancy(settings, workspace_id=workspace_id) as tenancy:
            return await tenancy.issue_key(workspace_id, name)

    issued = _run(issue())
    print(f"key id: {issued.key.id} (the key below is shown once)")
    print(issued.token)


@admin.command("revoke-key")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key's id (key_...).")],
    db: DbOption = None,
    database_url: UrlOption = None,
) -> None:
    """Revoke an API key at once."""
    from herald.bootstrap import open_tenancy

    settings = _settings(db, database_url)

    async def revoke() -> None:
        async with open_tenancy(settings, key_id=key_id) as tenancy:
            await tenancy.revoke_key(None, key_id)

    _run(revoke())
    err.print(f"revoked {key_id}")


@admin.command("delete-workspace")
def delete_workspace(
    workspace_id: Annotated[str, typer.Argument(help="The workspace's id (ws_...).")],
    confirm: Annotated[
        str, typer.Option(help="The workspace's id again: the erasure cannot be undone.")
    ],
    db: DbOption = None,
    database_url: UrlOption = None,
) -> None:
    """Delete a workspace: erase its channels, posts, deliveries, webhooks and keys."""
    from herald.bootstrap import open_tenancy

    settings = _settings(db, database_url)

    async def delete() -> dict[str, int]:
        async with open_tenancy(settings, workspace_id=workspace_id) as tenancy:
            return await tenancy.delete_workspace(workspace_id, confirm=confirm)

    counts = _run(delete())
    for kind, count in counts.items():
        print(f"{kind}: {count}")
    err.print(f"deleted {workspace_id}")


@admin.command("move-workspace")
def move_workspace(
    workspace_id: Annotated[str, typer.Argument(help="The workspace's id (ws_...).")],
    to: Annotated[str, typer.Option(help="The region it is to live in from now on.")],
    confirm: Annotated[
        str,
        typer.Option(
            help="The workspace's id again: its API requests are refused while it moves, and "
            "its data leaves its region's database."
        ),
    ],
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to wait for its deliveries in flight and its imports to finish.",
        ),
    ] = 300.0,
    abort: Annotated[
        bool,
        typer.Option(help="Give up a move under way (while the copy it left is not live)."),
    ] = False,
) -> None:
    """Move a workspace to another region's database: copied, then deleted where it was
    (explicit and logged; run again after an interruption, it carries on)."""
    from herald.bootstrap import move_workspace as move

    if confirm != workspace_id:
        err.print("[red]--confirm must repeat the workspace's id[/]")
        raise typer.Exit(2)
    settings = _settings(None, None)
    configure_logging(settings.log_level, settings.log_format)

    def busy(count: int) -> None:
        err.print(f"waiting: {count} deliveries in flight or imports unfinished")

    report = _run(move(settings, workspace_id, to, wait_s=wait, abort=abort, on_busy=busy))
    if report is None:
        err.print(f"move of {workspace_id} given up: it stays where it was")
        return
    for table, count in report.rows.items():
        print(f"{table}: {count}")
    print(f"held and released: {report.held}")
    if report.resumed:
        print(f"carried on: {report.resumed}")
    err.print(f"{workspace_id} now lives in {to}")


@admin.command("sync-directory")
def sync_directory(
    region: Annotated[
        str | None, typer.Option(help="This region's database only (default: every region's).")
    ] = None,
) -> None:
    """Bring the directory of a deployment in several regions in line with the regions'
    databases: record the workspaces and keys made before it existed, forget those a failed
    write left behind, and name what a person must decide."""
    from herald.bootstrap import sync_directory as sync

    settings = _settings(None, None)
    reports = _run(sync(settings, region))
    undecided = False
    for report in reports:
        print(
            f"{report.region}: {len(report.workspaces_added)} workspaces and "
            f"{report.keys_added} keys recorded, {len(report.orphans_removed)} forgotten"
        )
        for workspace in report.elsewhere:
            undecided = True
            err.print(
                f"[yellow]{report.region}: {workspace} is here, but the directory places it in "
                "another region: see docs/operations.md, Regions[/]"
            )
        if report.foreign_channels:
            undecided = True
            err.print(
                f"[yellow]{report.region}: channels of another region, which nothing here "
                f"publishes: {', '.join(report.foreign_channels)}[/]"
            )
    if undecided:
        raise typer.Exit(1)


@admin.command("rotate-keys")
def rotate_keys(db: DbOption = None, database_url: UrlOption = None) -> None:
    """Re-encrypt stored secrets with the first of HERALD_SECRET_KEYS (put the new key first,
    keep the old ones after it until this has run); with regions, in every region's database."""
    from herald.service.vault import Vault, rotate_secrets

    settings = _settings(db, database_url)
    try:
        vault = Vault.from_settings(settings)
    except HeraldError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    complete = True
    for name in sorted(settings.regions) or [settings.region]:
        here = settings.in_region(name)
        report = _run(_with_store(here, lambda s: rotate_secrets(s, vault)))
        where = f"{name}: " if settings.regions else ""
        print(f"{where}channel secrets re-encrypted: {report.channels_rotated}")
        print(f"{where}webhook secrets re-encrypted: {report.webhooks_rotated}")
        if not report.complete:
            complete = False
            # Rotation went on with the others; these were unusable before it and stay so.
            err.print(
                f"[yellow]{where}no configured key decrypts these secrets: re-authorise the "
                "channels and re-create the webhooks:[/]\n  " + "\n  ".join(report.unreadable)
            )
    if not complete:
        raise typer.Exit(1)


@admin.command("new-secret-key")
def new_secret_key() -> None:
    """Print a new random key for HERALD_SECRET_KEYS."""
    from cryptography.fernet import Fernet

    print(Fernet.generate_key().decode())


def _optimize_option(help_text: str, env: str) -> Any:
    """An option of ``herald optimize``, with its environment twin ``HERALD_OPTIMIZE_<env>``."""
    return typer.Option(help=help_text, envvar=f"HERALD_OPTIMIZE_{env}")


@optimize.command("evaluate")
def optimize_evaluate(
    *,
    data: Annotated[Path, _optimize_option("CSV export of past posts, one row per post.", "DATA")],
    metric: Annotated[str, _optimize_option("Column of the engagement count to model.", "METRIC")],
    time_column: Annotated[
        str | None, _optimize_option("Column of ISO 8601 publish times.", "TIME_COLUMN")
    ] = None,
    weekday_column: Annotated[
        str | None,
        _optimize_option("Column of weekdays 1-7 (without a time column).", "WEEKDAY_COLUMN"),
    ] = None,
    hour_column: Annotated[
        str | None,
        _optimize_option("Column of local hours 0-23 (without a time column).", "HOUR_COLUMN"),
    ] = None,
    weekday_one: Annotated[
        str,
        _optimize_option(
            "Which day the weekday column numbers 1: monday or sunday.", "WEEKDAY_ONE"
        ),
    ] = "monday",
    timezone: Annotated[
        str,
        _optimize_option(
            "The channel's time zone (naive times are taken as local to it).", "TIMEZONE"
        ),
    ] = "UTC",
    group_column: Annotated[
        str | None, _optimize_option("Column naming each post's channel (pooled).", "GROUP_COLUMN")
    ] = None,
    order_column: Annotated[
        str | None,
        _optimize_option(
            "Without times: a column that orders posts (e.g. a month).", "ORDER_COLUMN"
        ),
    ] = None,
    exposure_column: Annotated[
        str | None,
        _optimize_option(
            "Column of each post's audience size (scales the expectation).", "EXPOSURE_COLUMN"
        ),
    ] = None,
    separator: Annotated[str, _optimize_option("The CSV's field separator.", "SEPARATOR")] = ",",
    test_fraction: Annotated[
        float, _optimize_option("Share of the latest posts held out for scoring.", "TEST_FRACTION")
    ] = 0.3,
    seed: Annotated[
        int, _optimize_option("Seed of the posterior and bootstrap draws.", "SEED")
    ] = 12,
) -> None:
    """Fit the best-time model on the earlier posts of an export, score it on the later ones,
    against a time-blind baseline; print a JSON summary."""
    try:
        from herald.optimizer.dataset import DatasetSpec, load_dataset
        from herald.optimizer.errors import DatasetError, OptimizerError
        from herald.optimizer.offline import EvaluationSettings, evaluate
    except ImportError as exc:
        err.print(f"[red]error:[/] {exc.name} is missing: pip install 'herald[optimizer]'")
        raise typer.Exit(2) from exc
    if weekday_one not in ("monday", "sunday"):
        err.print("[red]error:[/] --weekday-one is monday or sunday")
        raise typer.Exit(2)
    if len(separator) != 1 or not 0 < test_fraction < 1:
        err.print("[red]error:[/] --separator is one character; --test-fraction is in (0, 1)")
        raise typer.Exit(2)
    spec = DatasetSpec(
        path=data,
        metric=metric,
        time_column=time_column,
        weekday_column=weekday_column,
        hour_column=hour_column,
        weekday_one="sunday" if weekday_one == "sunday" else "monday",
        timezone=timezone,
        group_column=group_column,
        order_column=order_column,
        exposure_column=exposure_column,
        separator=separator,
    )
    try:
        dataset = load_dataset(spec)
        report = evaluate(
            dataset,
            EvaluationSettings(test_fraction=test_fraction, seed=seed),
            grouped=group_column is not None,
        )
    except DatasetError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    except OptimizerError as exc:
        err.print(f"[red]error:[/] the model could not be fitted: {exc}")
        raise typer.Exit(1) from exc
    print(json.dumps(dataclasses.asdict(report), indent=2))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop where it is installed (less CPU per delivery), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        runner: Callable[[Coroutine[Any, Any, T]], T] = asyncio.run
    else:
        runner = uvloop.run
    try:
        return runner(coro)
    except HeraldError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
