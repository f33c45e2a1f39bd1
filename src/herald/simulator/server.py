"""The simulator's lifecycle: one aiohttp server per platform plus an admin port, and the
in-process API that tests, the demo and benchmarks drive.

Facebook and Instagram both speak Graph but get a port each, so that their request logs,
gauges and faults stay apart. YouTube's port also serves the Google token endpoint and the
media files. A simulator runs once: platform state lives as long as its servers.

A platform can be taken down (:meth:`Simulator.take_down`) as a crash would: its port stops
listening, so connections are refused, and the connections open to it close, requests in
progress with them. It comes back on the same port, with its state, after the given time or
at :meth:`Simulator.bring_up`.

Every account has a hidden audience (:mod:`.audience`) that decides what its posts are
worth; the platforms' insights endpoints show one noisy draw of it at each post's age
(:mod:`.engagement`), and only :meth:`Simulator.engagement_truth`,
:meth:`Simulator.expected_engagement` and :meth:`Simulator.audience` (and the admin port)
tell the truth itself, to evaluation tooling.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from yarl import URL

from herald.domain import MediaKind, Platform
from herald.simulator.accounts import SimAccount
from herald.simulator.admin import build_admin_app
from herald.simulator.audience import Audience
from herald.simulator.audit import Audit
from herald.simulator.clock import SimClock
from herald.simulator.config import ContentKind, FaultConfig, SimulatorConfig
from herald.simulator.context import SimContext
from herald.simulator.engagement import Observed, PostTruth
from herald.simulator.facebook import FacebookSim
from herald.simulator.instagram import InstagramSim
from herald.simulator.lifecycle import Lifecycle
from herald.simulator.linkedin import LinkedInSim
from herald.simulator.pipeline import pipeline
from herald.simulator.versions import graph_versions
from herald.simulator.youtube import MEDIA_PREFIX, YouTubeSim

__all__ = ["PORT_NAMES", "Simulator", "SimulatorUrls", "serve"]

PORT_NAMES = ("facebook", "instagram", "linkedin", "youtube", "admin")
_MAX_BODY = 512 * 1024 * 1024  # bodies read whole (JSON); uploads are streamed past it
_SHUTDOWN_S = 2.0
_BACKLOG = 1024


class SimulatorUrls(BaseModel):
    model_config = ConfigDict(frozen=True)

    facebook: str
    instagram: str
    linkedin: str
    youtube: str
    youtube_upload: str
    youtube_token: str
    media: str
    admin: str


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Simulator(Lifecycle):
    """Fake Facebook, Instagram, LinkedIn and YouTube on local ports.

    Use as ``async with Simulator(config) as sim:``. Ports are free ones unless ``ports``
    names them (keys from :data:`PORT_NAMES`).
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        ports: Mapping[str, int] | None = None,
        clock: SimClock | None = None,
    ) -> None:
        unknown = set(ports or {}) - set(PORT_NAMES)
        if unknown:
            raise ValueError(f"unknown port names: {sorted(unknown)}")
        self.config = config or SimulatorConfig()
        self._host = host
        self._ports = dict(ports or {})
        self._ctx = SimContext(self.config, clock)
        #: What the platforms received, judged from their side.
        self.audit: Audit = self._ctx.audit
        #: The platforms' clock: their limit windows and days follow it.
        self.clock: SimClock = self._ctx.clock
        self._runners: dict[str, web.AppRunner] = {}
        self._sites: dict[str, web.SockSite] = {}  # the listening ones: a platform down has none
        self._bound: dict[str, int] = {}
        self._down: dict[Platform, float] = {}  # since when (time.monotonic())
        self._comebacks: dict[Platform, asyncio.Task[None]] = {}
        self._urls: SimulatorUrls | None = None
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            raise RuntimeError("a simulator runs once; make a new one")
        self._started = True
        try:
            for name, app in self._apps().items():
                await self._serve(name, app, self._ports.get(name, 0))
        except BaseException:
            await self.stop()
            raise
        self._urls = self._make_urls(self._bound)

    async def stop(self) -> None:
        self._ctx.close()  # releases hung requests at once
        for task in self._comebacks.values():
            task.cancel()
        self._comebacks.clear()
        runners, self._runners = self._runners, {}
        self._sites.clear()
        for runner in reversed(runners.values()):
            await runner.cleanup()

    # -- the in-process API ---------------------------------------------------------------
    @property
    def urls(self) -> SimulatorUrls:
        if self._urls is None:
            raise RuntimeError("the simulator is not running")
        return self._urls

    def settings_overrides(self) -> dict[str, dict[str, str]]:
        """Merge into Herald's ``Settings`` to point every connector at this simulator."""
        urls = self.urls
        return {
            "facebook": {"base_url": urls.facebook},
            "instagram": {"base_url": urls.instagram},
            "linkedin": {"base_url": urls.linkedin},
            "youtube": {
                "base_url": urls.youtube,
                "upload_url": urls.youtube_upload,
                "token_url": urls.youtube_token,
            },
            # Its media (and nothing else on its machine) may be downloaded from.
            "egress": {"allow_cidrs": _host_network(urls.facebook)},
        }

    def add_account(self, platform: Platform | str, name: str | None = None) -> SimAccount:
        return self._ctx.accounts.add(Platform(platform), name)

    def accounts(self, platform: Platform | str | None = None) -> list[SimAccount]:
        return self._ctx.accounts.list(None if platform is None else Platform(platform))

    def revoke(self, platform: Platform | str, external_id: str) -> None:
        self._ctx.accounts.revoke(Platform(platform), external_id)

    def reauthorize(self, platform: Platform | str, external_id: str) -> dict[str, str]:
        return self._ctx.accounts.reauthorize(Platform(platform), external_id)

    def restrict(self, platform: Platform | str, external_id: str) -> None:
        """Hold the account back as spam: Instagram refuses its publishes (4 / 2207051)."""
        self._ctx.accounts.restrict(Platform(platform), external_id)

    def media_url(
        self,
        kind: MediaKind | str,
        name: str,
        *,
        size: int | None = None,
        length: bool = True,
        ranges: bool = True,
        cut: int | None = None,
    ) -> str:
        """A URL on this simulator that serves ``size`` deterministic bytes; ``length``,
        ``ranges`` and ``cut`` make it a worse server (see :mod:`.media`)."""
        url = URL(f"{self.urls.media}/{MediaKind(kind).value}/{name}")
        query = {
            "bytes": None if size is None else str(size),
            "length": None if length else "0",
            "ranges": None if ranges else "0",
            "cut": None if cut is None else str(cut),
        }
        return str(url.with_query({k: v for k, v in query.items() if v is not None}))

    def faults(self, platform: Platform | str) -> FaultConfig:
        return self._ctx.dice.faults(Platform(platform))

    def set_faults(self, platform: Platform | str, faults: FaultConfig) -> None:
        self._ctx.dice.set_faults(Platform(platform), faults)

    def advance_clock(self, seconds: float) -> float:
        """Move the simulated platforms' clock forward; returns the new Unix time."""
        return self._ctx.clock.advance(seconds)

    # -- the engagement ground truth (evaluation tooling only) ------------------------------
    def audience(self, account: SimAccount) -> Audience:
        """The hidden audience of ``account``: its cycles, time zones and effects."""
        return self._ctx.engagement.audience(account.platform, account.external_id)

    def engagement_truth(
        self,
        account: SimAccount,
        *,
        week_of: float | None = None,
        content: ContentKind | str | None = None,
        length: int | None = None,
    ) -> list[float]:
        """Expected interactions at full age of a post made at the start of each hour of the
        week (168 values, Monday 00:00 first) in the account's main time zone, for the week
        holding ``week_of`` (the simulator's now by default); the platform's reference
        content at the audience's best length unless ``content`` and ``length`` say."""
        kind = None if content is None else ContentKind(content)
        at = self.clock.now() if week_of is None else week_of
        return self.audience(account).hour_of_week(at, kind, length)

    def expected_engagement(
        self, platform: Platform | str, post_id: str, *, age_s: float | None = None
    ) -> float:
        """Expected interactions of a published post at ``age_s`` (full age if None);
        ``KeyError`` for a post the platform never published."""
        return self._ctx.engagement.expected(Platform(platform), post_id, age_s)

    def post_truth(self, platform: Platform | str, post_id: str) -> PostTruth | None:
        """What the ground truth fixed when the post was published (time, content, spacing)."""
        return self._ctx.engagement.post(Platform(platform), post_id)

    def observed_engagement(self, platform: Platform | str, post_id: str) -> Observed:
        """What the platform's insights show of the post now (as its endpoints answer)."""
        return self._ctx.engagement.observe(Platform(platform), post_id, self.clock.now())

    async def take_down(self, platform: Platform | str, *, for_s: float | None = None) -> None:
        """Crash ``platform``'s server: its port refuses connections, those open to it close.
        It comes back after ``for_s`` seconds, if given, or at :meth:`bring_up`."""
        kind = Platform(platform)
        self._cancel_comeback(kind)
        site = self._sites.pop(kind.value, None)
        if site is not None:
            await site.stop()  # closes the listening socket: connecting is refused
            server = self._runners[kind.value].server
            for connection in server.connections if server is not None else ():
                connection.force_close()
            self._down[kind] = time.monotonic()
        if for_s is not None:
            self._comebacks[kind] = asyncio.create_task(self._back_after(kind, for_s))

    async def bring_up(self, platform: Platform | str) -> None:
        """Listen again on ``platform``'s port; its accounts and posts are as they were."""
        kind = Platform(platform)
        self._cancel_comeback(kind)
        await self._listen(kind)

    def is_down(self, platform: Platform | str) -> bool:
        return Platform(platform) in self._down

    # -- internals --------------------------------------------------------------------------
    def _apps(self) -> dict[str, web.Application]:
        ctx = self._ctx
        return {
            "facebook": self._platform_app(Platform.FACEBOOK, FacebookSim(ctx).routes()),
            "instagram": self._platform_app(Platform.INSTAGRAM, InstagramSim(ctx).routes()),
            "linkedin": self._platform_app(Platform.LINKEDIN, LinkedInSim(ctx).routes()),
            "youtube": self._youtube_app(YouTubeSim(ctx)),
            "admin": build_admin_app(self),
        }

    def _platform_app(self, platform: Platform, routes: list[web.RouteDef]) -> web.Application:
        middlewares = [pipeline(self._ctx, platform)]
        if platform in (Platform.FACEBOOK, Platform.INSTAGRAM):
            middlewares.append(graph_versions(self._ctx.clock, self.config.graph_version))
        app = web.Application(middlewares=middlewares, client_max_size=_MAX_BODY)
        app.add_routes(routes)
        return app

    def _youtube_app(self, youtube: YouTubeSim) -> web.Application:
        middleware = pipeline(
            self._ctx, Platform.YOUTUBE, exempt_prefix=MEDIA_PREFIX, who=youtube.who
        )
        app = web.Application(middlewares=[middleware], client_max_size=_MAX_BODY)
        app.add_routes(youtube.routes())
        return app

    async def _serve(self, name: str, app: web.Application, port: int) -> None:
        # handler_cancellation: a client that hangs up ends its request here too, so the
        # in-flight gauges measure what clients really hold open.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=_SHUTDOWN_S
        )
        await runner.setup()
        self._runners[name] = runner
        self._bound[name] = await self._open_site(name, port)

    async def _open_site(self, name: str, port: int) -> int:
        sock = _bind(self._host, port)
        site = web.SockSite(self._runners[name], sock, backlog=_BACKLOG)
        try:
            await site.start()
        except BaseException:
            sock.close()
            raise
        self._sites[name] = site
        bound: int = sock.getsockname()[1]
        return bound

    async def _listen(self, platform: Platform) -> None:
        since = self._down.pop(platform, None)
        if since is None:
            return
        await self._open_site(platform.value, self._bound[platform.value])
        self.audit.was_down(platform, time.monotonic() - since)

    async def _back_after(self, platform: Platform, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._comebacks.pop(platform, None)
        await self._listen(platform)

    def _cancel_comeback(self, platform: Platform) -> None:
        task = self._comebacks.pop(platform, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _make_urls(self, ports: dict[str, int]) -> SimulatorUrls:
        host = self._host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"

        def origin(name: str) -> str:
            return f"http://{host}:{ports[name]}"

        version = self.config.graph_version
        youtube = origin("youtube")
        # Media on the admin port, a host of its own: a platform taken down leaves them be.
        media = f"{origin('admin')}{MEDIA_PREFIX.rstrip('/')}"
        return SimulatorUrls(
            facebook=f"{origin('facebook')}/{version}",
            instagram=f"{origin('instagram')}/{version}",
            linkedin=origin("linkedin"),
            youtube=youtube,
            youtube_upload=youtube,
            youtube_token=f"{youtube}/token",
            media=media,
            admin=origin("admin"),
        )


async def serve(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    on_ready: Callable[[Simulator], None] | None = None,
) -> None:
    """Run a simulator until cancelled; ``on_ready`` is called once every port listens."""
    async with Simulator(config, host=host, ports=ports) as sim:
        if on_ready is not None:
            on_ready(sim)
        await asyncio.Event().wait()


def _host_network(url: str) -> str:
    """The one address the simulator serves on, as a network (its host names loopback)."""
    host = urlsplit(url).hostname or "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = ipaddress.ip_address("127.0.0.1")  # localhost
    return str(ipaddress.ip_network(address))
