"""Herald's configuration: one typed object, built once at start-up and passed down.

Every field can be set from the environment: ``HERALD_`` + the path joined with ``__``, for
example ``HERALD_ENGINE__MAX_LATENESS_S=3600`` or
``HERALD_FACEBOOK__BASE_URL=http://127.0.0.1:8801/v23.0``. Durations carry their unit in the
name (``_s`` for seconds). Platform limits default to the platforms' documented limits
(docs/platforms.md); set the ones your app was granted.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from herald.constants import CAPS_KEY_PREFIX, DEFAULT_REGION, LIMITS_KEY_PREFIX, REGION_PATTERN
from herald.domain import Platform
from herald.errors import ConfigError

__all__ = [
    "ApiSettings",
    "BrokerSettings",
    "DatabaseSettings",
    "EngineSettings",
    "FacebookSettings",
    "InstagramSettings",
    "LimitSettings",
    "LinkedInSettings",
    "PlatformSettings",
    "Settings",
    "WebhookSettings",
    "YouTubeSettings",
]

# Durations that mean the same in every section that has them.
#: Full-jitter backoff (:func:`herald.backoff.full_jitter`): retry n waits up to
#: min(cap, base x 2^(n-1)) seconds.
BackoffSeconds = Annotated[float, Field(gt=0)]
#: The longest sleep of a loop that notifications wake: work written by other processes
#: cannot wake it, so it looks again this often.
RecheckSeconds = Annotated[
    float, Field(gt=0, description="longest sleep, to see work written by other processes")
]
#: On a stop, the time requests in flight get to end before the rest is handed back.
GraceSeconds = Annotated[float, Field(ge=0, description="time requests in flight get to end")]
#: The whole of one HTTP request, connecting included.
TimeoutSeconds = Annotated[float, Field(gt=0, description="whole request, connect included")]


class EngineSettings(BaseModel):
    max_lateness_s: float = Field(86_400.0, gt=0, description="older than this: expired, unsent")
    claim_batch: int = Field(500, gt=0, le=5000, description="deliveries claimed per round trip")
    max_in_flight: int = Field(4000, gt=0, description="claimed deliveries held in memory")
    lease_s: float = Field(300.0, ge=10, description="claim lease; renewed while held")
    hold_s: float = Field(30.0, ge=0, description="longer rate-limit waits go back to the store")
    max_retries: int = Field(6, ge=0, description="transient failures before a delivery fails")
    backoff_base_s: BackoffSeconds = 2.0
    backoff_cap_s: BackoffSeconds = 900.0
    check_delay_s: float = Field(
        5.0, ge=0, description="wait after an unknown outcome before looking the post up"
    )
    max_checks: int = Field(8, ge=1, description="failed look-ups before leaving it to the user")
    listing_settle_s: float = Field(
        120.0,
        ge=0,
        description="a look-up that finds nothing is trusted only this long after the "
        "uncertain request: the platforms' listings show a new post late",
    )
    shutdown_grace_s: GraceSeconds = 30.0
    idle_recheck_s: RecheckSeconds = 5.0
    limit_margin_s: float = Field(
        2.0, ge=0, description="slack added to rolling windows for send delays and clock skew"
    )
    throttle_pause_s: float = Field(
        60.0, gt=0, description="pause when a platform throttles without saying for how long"
    )
    throttle_pause_cap_s: float = Field(
        3600.0,
        gt=0,
        description=(
            "while such throttles keep coming, the pause doubles from throttle_pause_s up to "
            "this (never below throttle_pause_s)"
        ),
    )
    outage_errors: int = Field(
        5,
        ge=1,
        description="requests that never reached a platform, within outage_window_s, "
        "that pause every request to it (an outage)",
    )
    outage_window_s: float = Field(10.0, gt=0, description="see outage_errors")
    #: An outage's pause: full jitter, doubling while requests after each pause still fail
    #: (the cap never below the base).
    outage_pause_base_s: BackoffSeconds = 2.0
    outage_pause_cap_s: BackoffSeconds = 300.0
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    heartbeat_s: float = Field(5.0, gt=0, description="how often the engine records it is alive")
    dead_after_s: float = Field(
        15.0, gt=0, description="an engine silent this long is dead: any engine recovers its claims"
    )
    store_backoff_base_s: BackoffSeconds = 0.1
    store_backoff_cap_s: BackoffSeconds = Field(
        5.0, description="longest wait between tries while the store is away"
    )
    version_warning_days: int = Field(
        90,
        ge=0,
        description="warn (metric, log, webhook) this many days before a platform API "
        "version Herald speaks retires",
    )
    probe_host: str = Field("127.0.0.1", description="`herald run`'s probe listens here")
    probe_port: int | None = Field(
        None, ge=1, le=65535, description="serve /healthz, /readyz, /metrics (`herald run`)"
    )

    @model_validator(mode="after")
    def _hold_below_lease(self) -> EngineSettings:
        if self.hold_s >= self.lease_s / 2:
            raise ValueError("engine.hold_s must be below half of engine.lease_s")
        return self

    @model_validator(mode="after")
    def _heartbeats_before_death(self) -> EngineSettings:
        # One late or lost beat must not make an engine look dead to the others.
        if self.dead_after_s < 2 * self.heartbeat_s:
            raise ValueError("engine.dead_after_s must be at least twice engine.heartbeat_s")
        return self


class PlatformSettings(BaseModel):
    base_url: str
    concurrency: int = Field(gt=0, description="requests in flight at once, per engine process")
    # Caps wider than one process (herald.caps.claims), held across every engine sharing
    # limits.backend: None is no cap of that scope.
    channel_concurrency: int | None = Field(
        None, gt=0, description="requests in flight at once on one channel, all engines"
    )
    app_concurrency: int | None = Field(
        None, gt=0, description="requests in flight at once through the platform app, all engines"
    )
    cluster_concurrency: int | None = Field(
        None, gt=0, description="requests in flight at once to the platform, all engines"
    )
    timeout_s: TimeoutSeconds = 30.0
    connect_timeout_s: float = Field(5.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        return value.rstrip("/")


class FacebookSettings(PlatformSettings):
    base_url: str = "https://graph.facebook.com/v23.0"
    concurrency: int = 8
    # Graph API limits scale with audience (platform-apis.md section 1): calls per Page per
    # rolling 24 h = 4800 x engaged users; calls per app per rolling hour = 200 x daily users.
    page_engaged_users: int = Field(1, gt=0)
    app_daily_active_users: int = Field(100, gt=0)


class InstagramSettings(PlatformSettings):
    base_url: str = "https://graph.facebook.com/v23.0"
    concurrency: int = 5
    publishes_per_24h: int = Field(100, gt=0, description="content_publishing_limit quota")
    containers_per_24h: int = Field(400, gt=0)
    poll_initial_s: float = Field(
        1.0, gt=0, description="wait before the second container status poll (doubling)"
    )
    poll_max_s: float = Field(10.0, gt=0, description="poll interval grows up to this")
    poll_timeout_s: float = Field(300.0, gt=0, description="give up on a container after this")


class LinkedInSettings(PlatformSettings):
    base_url: str = "https://api.linkedin.com"
    concurrency: int = 4
    api_version: str = Field("202606", pattern=r"^\d{6}$", description="LinkedIn-Version header")
    # LinkedIn does not publish its numbers (they show in the developer portal); these are the
    # commonly quoted ones. Both reset at 00:00 UTC.
    member_posts_per_day: int = Field(150, gt=0)
    app_posts_per_day: int | None = Field(None, gt=0)
    # LinkedIn publishes a pixel limit for images (36,152,320), not a byte limit;
    # integrators report 5 to 8 MB. Herald refuses larger images before uploading them.
    max_media_bytes: int = Field(
        8 * 1024 * 1024, gt=0, description="largest image a post may name, in bytes"
    )


class YouTubeSettings(PlatformSettings):
    base_url: str = "https://www.googleapis.com"
    upload_url: str = "https://www.googleapis.com"
    token_url: str = "https://oauth2.googleapis.com/token"
    concurrency: int = 4
    timeout_s: float = 600.0
    # Two quota models appear in Google's documentation (platform-apis.md section 4):
    # "bucket": videos.insert has its own 100 calls/day; "units": each insert costs 1600 of
    # the 10,000 daily units. Both reset at midnight Pacific Time.
    quota_model: Literal["bucket", "units"] = "bucket"
    insert_calls_per_day: int = Field(100, gt=0)
    units_per_day: int = Field(10_000, gt=0)
    insert_cost_units: int = Field(1600, gt=0)
    uploads_per_channel_per_day: int | None = Field(None, gt=0)
    privacy_status: Literal["public", "unlisted", "private"] = "public"
    category_id: str = "22"
    # videos.insert takes files up to 256 GB (platform-apis.md section 4).
    max_media_bytes: int = Field(
        256 * 10**9, gt=0, description="largest video a post may name, in bytes"
    )
    # Each PUT of a resumable upload; one chunk is all an upload holds in memory.
    upload_chunk_bytes: int = Field(
        8 * 1024 * 1024,
        ge=256 * 1024,
        multiple_of=256 * 1024,
        description="bytes per upload request: a multiple of 256 KiB, the protocol's unit",
    )


class ApiSettings(BaseModel):
    """The REST API (``herald api``, ``herald serve``)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    past_grace_s: float = Field(
        300.0, ge=0, description="a publish time this far in the past is accepted (sent at once)"
    )
    max_horizon_days: int = Field(
        730, ge=1, le=3650, description="publish times and free-slot searches stop this far ahead"
    )
    max_page_size: int = Field(200, ge=1, le=1000, description="largest page of a listing")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest JSON request body")
    import_max_bytes: int = Field(16_777_216, ge=1024, description="largest CSV import body")
    import_max_rows: int = Field(10_000, ge=1, description="most rows in one CSV import")
    import_max_deliveries: int = Field(
        100_000, ge=1, description="most deliveries (rows x their channels) in one CSV import"
    )
    import_max_running: int = Field(
        2, ge=1, description="a workspace's CSV imports queued or running at once (more: 429)"
    )
    import_workers: int = Field(
        1, ge=1, description="CSV imports each API process works on at once; others wait queued"
    )
    import_lease_s: float = Field(
        30.0,
        ge=1,
        description="an import whose API process stopped is taken over this long after that "
        "process's last sign of life (and what it stored so far removed)",
    )
    import_loop_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description="the share of the time one import may work (on the event loop, or waiting "
        "for the store's writes): it pauses in proportion",
    )
    import_spool_dir: str | None = Field(
        None, description="where uploaded CSV files wait for their job (unset: the system's temp)"
    )
    import_retention_s: float = Field(
        2_592_000.0,
        ge=60,
        description="a finished CSV import job (its state, problems and list of posts; not the "
        "posts) is kept this long after it finished, then purged",
    )
    readiness_timeout_s: float = Field(2.0, gt=0, description="/readyz waits this long")
    key_requests_per_s: float = Field(
        20.0, ge=0, description="each API key's steady request rate, per API process (0: none)"
    )
    key_burst: int = Field(100, ge=1, description="requests an API key may make at once")
    metrics_token: SecretStr | None = Field(
        None,
        description="/metrics answers only with this bearer token (unset: /metrics is off on "
        "the API port; engines serve theirs on engine.probe_port)",
    )
    idempotency_ttl_s: float = Field(
        86_400.0,
        ge=60,
        description="an Idempotency-Key names one write this long: a retry with it within "
        "this time gets the first answer",
    )
    idempotency_lock_s: float = Field(
        120.0,
        ge=1,
        description="a request holds its Idempotency-Key this long at most: a retry after a "
        "process died mid-request waits this long (longer than any request takes; a slower "
        "request that wrote nothing yet may be taken over, and then writes nothing); API "
        "processes' clocks must agree to well within it",
    )

    other_regions: Literal["serve", "redirect"] = Field(
        "serve",
        description="with regions: a request whose key's workspace lives in another region is "
        "served from that region's database (serve) or redirected to that region's api_url "
        "(redirect, HTTP 307)",
    )
    directory_cache_s: float = Field(
        5.0,
        ge=0,
        description="with regions: how long an API process remembers which region a key's "
        "workspace lives in (a workspace being moved is refused meanwhile)",
    )

    @model_validator(mode="after")
    def _lock_within_ttl(self) -> ApiSettings:
        if self.idempotency_lock_s >= self.idempotency_ttl_s:
            raise ValueError("api.idempotency_lock_s must be shorter than api.idempotency_ttl_s")
        return self


class DatabaseSettings(BaseModel):
    """Beside the primary (``database_url``, where every write and every decision of the
    engine goes): a PostgreSQL streaming replica for the reads that may lag (listings,
    exports, calendars), read-your-writes per API key. See docs/architecture.md, "Read
    replicas"."""

    replica_url: str | None = Field(
        None, description="a streaming replica of database_url (PostgreSQL only), for reads"
    )
    replica_max_lag_s: float = Field(
        30.0, gt=0, description="a replica further behind than this serves nothing"
    )
    replica_check_s: float = Field(
        0.5,
        gt=0,
        description="how often an API process reads how far the replica has replayed",
    )

    @field_validator("replica_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _one_server(_postgres_url(value, "database.replica_url"), "database.replica_url")


def _postgres_url(value: str, name: str) -> str:
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{name} must start with postgresql://")
    return value


def _one_server(value: str, name: str) -> str:
    """A replica's URL names one server: behind several hosts, libpq picks any that answers,
    a primary or another standby, and read-your-writes would be measured on the wrong one."""
    parts = urlsplit(value)
    hosts = [parts.netloc.rpartition("@")[2]]
    hosts += [v for k, v in parse_qsl(parts.query) if k in ("host", "hostaddr", "port")]
    if any("," in host for host in hosts):
        raise ValueError(f"{name} must name one server (a standby), not several hosts")
    return value


class RegionSettings(BaseModel):
    """One region of a deployment in several (``regions``): its own database, where its
    workspaces live whole, and the public address of its API."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = Field(description="the region's PostgreSQL database (its primary)")
    replica_url: str | None = Field(None, description="a streaming replica of it, for reads")
    api_url: AnyHttpUrl | None = Field(
        None, description="the region's public API address (where redirects send callers)"
    )

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        return _postgres_url(value, "a region's database_url")

    @field_validator("replica_url")
    @classmethod
    def _replica(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _one_server(_postgres_url(value, "a region's replica_url"), "a region's replica_url")


def _distinct_databases(regions: dict[str, RegionSettings]) -> None:
    """Each region's workspaces live in a database of its own: two regions on one would each
    take the other's workspaces for their own (and a move between them erase one)."""
    seen: dict[str, str] = {}
    for name, region in sorted(regions.items()):
        if region.database_url in seen:
            raise ValueError(
                f"regions {seen[region.database_url]} and {name} have the same database_url: "
                "each region's workspaces live in a database of its own"
            )
        seen[region.database_url] = name


class LimitSettings(BaseModel):
    """Where the engine keeps its rate limits and its concurrency caps wider than one process:
    in its own memory (one engine per set of accounts) or in Redis, shared by every engine
    pointed at it (several engines on one PostgreSQL database). See docs/architecture.md,
    "Rate limits" and "Concurrency caps"."""

    backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = Field(
        None, description="the Redis the engines share (backend 'redis'), redis://host:port/db"
    )
    redis_prefix: str = Field(
        LIMITS_KEY_PREFIX,
        min_length=1,
        description="starts every key: engines share limits when they share Redis and prefix",
    )
    redis_timeout_s: TimeoutSeconds = 2.0
    caps_prefix: str = Field(
        CAPS_KEY_PREFIX,
        min_length=1,
        description="starts every key of the shared concurrency caps (backend 'redis')",
    )
    cap_lease_s: float = Field(
        10.0,
        ge=1,
        description="a concurrency slot's lease, renewed every third of it by its holder: a "
        "dead engine's slots free within it",
    )
    cap_recheck_s: float = Field(
        0.5,
        gt=0,
        description="a request waiting for a shared cap asks again after at most this long (a "
        "slot freed by another engine wakes no one here)",
    )
    unavailable_retry_s: float = Field(
        1.0,
        gt=0,
        description="while the shared limiter is away or being rebuilt, a request asks again "
        "after this long",
    )

    @model_validator(mode="after")
    def _redis_needs_url(self) -> LimitSettings:
        if self.backend == "redis" and not self.redis_url:
            raise ValueError("limits.backend 'redis' needs limits.redis_url")
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("limits.redis_url must start with redis://, rediss:// or unix://")
        return self


class BrokerSettings(BaseModel):
    """The broker between ``herald dispatcher`` and ``herald worker`` processes (the
    distributed mode; ``herald run`` and ``herald serve`` keep their queue in memory). See
    docs/architecture.md, "Distributed mode"."""

    url: str | None = Field(
        None, description="redis://host:port/db (Redis Streams) or amqp://user:pass@host/vhost"
    )
    handoff_s: float = Field(
        60.0,
        ge=5,
        description="a claim waiting in the broker is leased this long: a message lost is "
        "claimed and sent again after it",
    )
    max_queued: int = Field(
        2000, gt=0, description="the dispatcher claims no more while this many jobs wait unread"
    )
    depth_recheck_s: float = Field(
        1.0, gt=0, description="while the broker is full, the dispatcher looks again after this"
    )
    prefetch: int | None = Field(
        None,
        gt=0,
        description="jobs a worker holds, sending or waiting (default: 4 per request it may "
        "have in flight)",
    )
    retry_s: float = Field(
        1.0, gt=0, description="while the broker is away, a process tries again after this"
    )

    @field_validator("url")
    @classmethod
    def _known_broker(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("redis://", "rediss://", "unix://", "amqp://", "amqps://")
        ):
            raise ValueError("broker.url must start with redis://, rediss://, amqp:// or amqps://")
        return value


class WebhookSettings(BaseModel):
    """The webhook sender: outbox events POSTed to subscribers, signed, retried, shared fairly
    between webhooks and workspaces, and failing webhooks held back, then disabled."""

    concurrency: int = Field(8, gt=0, le=256, description="requests in flight at once")
    batch: int = Field(100, gt=0, le=1000, description="events claimed per round trip")
    lease_s: float = Field(60.0, ge=5, description="a claimed event is re-sent after this")
    timeout_s: TimeoutSeconds = 10.0
    max_attempts: int = Field(12, ge=1, description="attempts before an event is given up")
    backoff_base_s: BackoffSeconds = 5.0
    backoff_cap_s: BackoffSeconds = 3600.0
    idle_recheck_s: RecheckSeconds = 5.0
    shutdown_grace_s: GraceSeconds = 10.0
    # Fairness: what one webhook, one workspace may hold of the senders (counted in the store,
    # across every sender sharing it), so a slow or dead receiver never delays another's.
    endpoint_concurrency: int = Field(
        4, gt=0, le=256, description="requests in flight at once to one webhook (1 while failing)"
    )
    workspace_concurrency: int | None = Field(
        None,
        gt=0,
        le=256,
        description="requests in flight at once for one workspace's "
        "webhooks (default: half of concurrency, rounded up)",
    )
    endpoint_backoff_base_s: BackoffSeconds = Field(
        1.0, description="a webhook whose attempt failed is held back this long, doubling"
    )
    endpoint_backoff_cap_s: BackoffSeconds = Field(
        600.0, description="longest hold of a failing webhook"
    )
    # Auto-disable: both must hold (a long outage, not one bad hour or a few sparse events).
    disable_after_failures: int = Field(
        20, ge=0, description="failed attempts in a row before a webhook is disabled (0: never)"
    )
    disable_after_s: float = Field(
        259_200.0, ge=0, description="and every attempt failed for this long (3 days)"
    )

    @model_validator(mode="after")
    def _timeout_below_lease(self) -> WebhookSettings:
        if self.timeout_s >= self.lease_s:
            raise ValueError("webhooks.timeout_s must be below webhooks.lease_s")
        return self

    @model_validator(mode="after")
    def _shares_within_concurrency(self) -> WebhookSettings:
        if self.workspace_concurrency is not None and (
            self.workspace_concurrency > self.concurrency
        ):
            raise ValueError("webhooks.workspace_concurrency must be at most webhooks.concurrency")
        return self

    @property
    def workspace_share(self) -> int:
        """Requests in flight at once for one workspace: half the sender by default, so one
        tenant's flood always leaves room for the others."""
        if self.workspace_concurrency is not None:
            return self.workspace_concurrency
        return (self.concurrency + 1) // 2


def _split_list(value: Any) -> Any:
    """A list setting from the environment: a JSON list, or items separated by commas or
    white space (``HERALD_SECRET_KEYS``, ``HERALD_EGRESS__ALLOW_CIDRS``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part for part in text.replace(",", " ").split() if part]


#: The metadata of a list setting that may come from one environment variable.
_FROM_ENV = BeforeValidator(_split_list)


class EgressSettings(BaseModel):
    """Where Herald may connect when a tenant chooses the address (media and webhook URLs):
    public addresses only, and the networks listed here (see herald.egress)."""

    allow_cidrs: Annotated[list[IPvAnyNetwork], NoDecode, _FROM_ENV] = Field(
        default_factory=list,
        description="networks allowed besides public addresses (CIDRs, comma-separated in env)",
    )

    @field_validator("allow_cidrs")
    @classmethod
    def _no_blanket(cls, value: list[IPvAnyNetwork]) -> list[IPvAnyNetwork]:
        if any(network.prefixlen == 0 for network in value):
            raise ValueError("a /0 network would allow every address: list the networks instead")
        return value


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HERALD_",
        env_nested_delimiter="__",
        extra="forbid",
        hide_input_in_errors=True,  # errors must never echo a secret key
    )

    database_url: str = "sqlite:///herald.db"
    region: str = Field(
        DEFAULT_REGION,
        pattern=REGION_PATTERN,
        description="this deployment's region: channels without one publish from here",
    )
    #: A deployment in several regions: each region's database and API, by region name. Set,
    #: ``database_url`` is the home region's (``region``), and ``directory_url`` is needed.
    regions: dict[str, RegionSettings] = Field(default_factory=dict)
    directory_url: str | None = Field(
        None,
        description="with regions: the global directory (PostgreSQL) of every workspace's and "
        "key's region, which every API node reads",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    facebook: FacebookSettings = Field(default_factory=FacebookSettings)
    instagram: InstagramSettings = Field(default_factory=InstagramSettings)
    linkedin: LinkedInSettings = Field(default_factory=LinkedInSettings)
    youtube: YouTubeSettings = Field(default_factory=YouTubeSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    egress: EgressSettings = Field(default_factory=EgressSettings)
    #: Keys that encrypt channel credentials and webhook secrets at rest (Fernet, 32 url-safe
    #: base64-encoded bytes each). The first encrypts; every one decrypts, so a new key goes
    #: first and the old ones stay until ``herald admin rotate-keys`` has re-encrypted. No
    #: default: the API refuses to start without one.
    secret_keys: Annotated[list[SecretStr], NoDecode, _FROM_ENV] = Field(default_factory=list)

    def platform(self, platform: Platform) -> PlatformSettings:
        section: PlatformSettings = getattr(self, platform.value)
        return section

    def worker_prefetch(self, platforms: Iterable[Platform]) -> int:
        """The jobs a worker of ``platforms`` holds at most (``broker.prefetch``, else four
        per request it may have in flight): enough to keep every slot busy while the next
        jobs are adopted, several at a time; the rest waits in the broker."""
        slots = sum(self.platform(p).concurrency for p in platforms)
        return self.broker.prefetch or max(1, 4 * slots)

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://", "memory://")):
            raise ValueError("database_url must start with sqlite://, postgresql:// or memory://")
        return value

    @model_validator(mode="after")
    def _home_region(self) -> Settings:
        """With regions: the home region's database is ``database_url`` (an explicit one that
        differs is a mistake, not a choice), and the directory is known."""
        if not self.regions:
            if self.directory_url is not None:
                raise ValueError("directory_url is for a deployment in several regions")
            return self
        for name in self.regions:
            if not re.match(REGION_PATTERN, name):
                raise ValueError(f"region name {name!r}: lower-case letters, digits and dashes")
        _distinct_databases(self.regions)
        home = self.regions.get(self.region)
        if home is None:
            raise ValueError(
                f"region {self.region!r} is not one of regions ({', '.join(sorted(self.regions))})"
            )
        if self.directory_url is None:
            raise ValueError("a deployment in several regions needs directory_url")
        _postgres_url(self.directory_url, "directory_url")
        if "database_url" in self.model_fields_set and self.database_url != home.database_url:
            raise ValueError(
                f"database_url differs from region {self.region}'s database_url: with regions, "
                "set each region's database under regions only"
            )
        self.database_url = home.database_url
        if self.database.replica_url is None:
            self.database.replica_url = home.replica_url
        if self.api.other_regions == "redirect":
            lacking = [name for name, region in self.regions.items() if region.api_url is None]
            if lacking:
                raise ValueError(
                    "api.other_regions 'redirect' needs every region's api_url: "
                    + ", ".join(sorted(lacking))
                )
        return self

    @model_validator(mode="after")
    def _replica_of_postgres(self) -> Settings:
        # An embedded database has no replica to read from; memory:// (tests) has one copy.
        if self.database.replica_url is not None and self.database_url.startswith("sqlite://"):
            raise ValueError(
                "database.replica_url needs a PostgreSQL database_url: SQLite has no replicas"
            )
        return self

    def in_region(self, name: str) -> Settings:
        """These settings as a process of region ``name`` sees them: its database (and
        replica) and its region. :class:`~herald.errors.ConfigError` for a region the
        deployment does not have."""
        if not self.regions:
            if name != self.region:
                raise ConfigError(
                    f"this deployment has one region, {self.region}: configure regions to "
                    f"keep workspaces in {name}"
                )
            return self
        chosen = self.regions.get(name)
        if chosen is None:
            raise ConfigError(
                f"unknown region {name!r}: this deployment has {', '.join(sorted(self.regions))}"
            )
        data = self.model_dump()
        data.update(region=name, database_url=chosen.database_url)
        data["database"]["replica_url"] = chosen.replica_url
        return Settings.model_validate(data)

    @field_validator("secret_keys")
    @classmethod
    def _fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for index, key in enumerate(value):
            if not _is_fernet_key(key.get_secret_value()):
                raise ValueError(
                    f"secret key #{index + 1} is not a Fernet key (32 url-safe base64-encoded "
                    "bytes); make one with `herald admin new-secret-key`"
                )
        return value
