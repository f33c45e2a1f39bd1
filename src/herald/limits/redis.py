"""The shared rate limiter: the memory limiter's algorithms, kept in Redis for many engines.

Engines on any number of machines pointed at one Redis together never exceed a limit: each
admission is checked by one Lua script (``lua/admit.lua``) that reads every key a request
touches (its channel's and its app's rules, a daily quota, the pauses) and records them all,
or none, in one step Redis runs whole. The admissions a worker makes together go as one call
of the script (:mod:`herald.limits.batching`), which takes them in turn. The arithmetic is
the memory limiter's, on the same figures:

- rolling windows: a sorted set per key, one member per grant (``cost:grant-id:index``,
  scored by its time) plus a running total, so a refund takes out that very grant;
- calendar quotas: one counter per day in the rule's zone. The day keys, and when each day
  reopens, are computed here (the zone database lives in Python), and a grant near midnight
  counts on both days, as in memory;
- pacing: the GCRA's theoretical arrival time;
- pauses: the Unix time each paused key reopens.

**Time.** The caller's ``now`` is the only clock in the arithmetic; Redis's is never read.
Engines on several machines must keep their clocks in step (NTP): a machine whose clock runs
``d`` seconds behind sees each window end ``d`` seconds early, so keep the rules' margins
(``engine.limit_margin_s``) above the skew. Keys expire by Redis's clock once the longest
rule stops looking back at them (the window plus margin; two days plus margins for a day).

**Restarts.** Redis may lose what it holds (a restart without persistence, a failover). An
empty limiter would grant fresh quotas, so each admission checks, inside the script, that the
``:rebuilt`` marker names the running server's ``run_id``; if not, or if Redis cannot be
reached, :meth:`RedisLimiter.reserve` raises :class:`~herald.errors.LimiterUnavailable` and
admits nothing. :meth:`RedisLimiter.rebuild` refills it from the store's attempts: one engine
does it under ``:rebuild-lock`` (taken with SET NX and an expiry, so that a rebuilder that
dies hands over), the others wait for the marker. Pauses live apart and are not cleared by a
rebuild; the ones Redis lost are learnt again from the platforms. A grant made before the
rebuild is never refunded after it (``:rebuilt-at``): the replay may not have counted it (its
request not yet marked as leaving in the store), and its refund would take out another's.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from importlib import resources

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from herald.constants import LIMITS_KEY_PREFIX
from herald.errors import LimiterError, LimiterUnavailable
from herald.limits.batching import ScriptBatcher
from herald.limits.rules import CalendarQuota, LimitClaim, Pacing, RollingWindow
from herald.limits.usage import SeenUsage
from herald.timing import zone
from herald.types import EarlierGrants

__all__ = ["RedisLimiter"]

_UNREADY = b"unready"
_REPLAY_BATCH = 500  # replayed grants per call of the script while rebuilding
_DAY_TTL_S = 2 * 86_400  # a day counter outlives any day (25 h at most) and the one before
_PAUSE_TTL_S = 86_400  # kept after a pause ends, for a peer whose clock runs behind


def _script(name: str) -> str:
    return resources.files("herald.limits").joinpath("lua", name).read_text(encoding="utf-8")


def _num(value: float) -> str:
    return repr(float(value))  # the shortest string that reads back as the same double


@asynccontextmanager
async def _translated(timeout_s: float | None = None) -> AsyncIterator[None]:
    """Redis errors as Herald's: an unreachable server is transient, the rest a failure. A
    call that takes longer than ``timeout_s`` counts as unreachable (TimeoutError is an
    OSError)."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise LimiterUnavailable(f"Redis cannot be reached: {exc}") from exc
    except RedisError as exc:
        raise LimiterError(f"Redis refused a limiter command: {exc}") from exc


class _Call:
    """One script call's keys and arguments, built claim by claim."""

    __slots__ = ("args", "keys")

    def __init__(self, keys: list[str], args: list[str]) -> None:
        self.keys, self.args = keys, args


class RedisLimiter:
    """Implements :class:`herald.types.RateLimiter` for every engine sharing one Redis.

    ``client`` is owned by the caller unless the limiter was made by :meth:`from_url` (then
    :meth:`aclose` closes it). ``prefix`` starts every key: engines share limits exactly when
    they share Redis and prefix. ``rebuild_lock_s`` bounds how long a dead rebuilder holds
    the others up; ``marker_poll_s`` is how often a waiting engine looks for the marker.
    ``timeout_s`` is each call's deadline (None: none).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = LIMITS_KEY_PREFIX,
        rebuild_lock_s: float = 60.0,
        marker_poll_s: float = 0.1,
        wall_clock: Callable[[], float] = time.time,
        timeout_s: float | None = None,
    ) -> None:
        self._client = client
        self._owns_client = False
        self._timeout_s = timeout_s
        self.prefix = prefix
        self._marker = f"{prefix}:rebuilt"
        self._rebuilt_at = f"{prefix}:rebuilt-at"  # grants older than this are never refunded
        self._lock = f"{prefix}:rebuild-lock"
        self._rebuild_lock_ms = max(1, round(rebuild_lock_s * 1000))
        self._marker_poll_s = marker_poll_s
        self._wall_clock = wall_clock  # for pause expiries only: pauses come as Unix times
        # Grant ids, unique among every engine's: this limiter's random part and a count (no
        # call for randomness on each admission).
        self._grant_ids = map(f"{secrets.token_hex(8)}-{{:x}}".format, itertools.count())
        # Admissions made together (a lane's ready jobs) go as one call of the script; a
        # rebuild sends its replays through the script itself, many a call.
        self._admissions = ScriptBatcher(
            client,
            _script("admit.lua"),
            keys=[self._marker],
            args=["reserve"],
            timeout_s=timeout_s,
        )
        self._admit = self._admissions.script
        self._refund = client.register_script(_script("refund.lua"))
        self._block = client.register_script(_script("block.lua"))
        # What the admissions saw of each key: herald_quota_used without a scan of Redis.
        self._usage = SeenUsage()
        self._unlock = client.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end"
        )

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = LIMITS_KEY_PREFIX, timeout_s: float = 2.0
    ) -> RedisLimiter:
        """A limiter on its own connection pool to ``url`` (``redis://host:port/db``). A lost
        connection is tried twice more, briefly, before the server counts as away."""
        client = aioredis.Redis.from_url(
            url,
            # No socket timeout (redis-py's default is 5 s since its 6.0): it would wrap every
            # command's send in a task of its own (asyncio.wait_for) and every read in a
            # timeout, about 70 us of CPU a round trip. Each call's deadline is the limiter's.
            socket_timeout=None,
            socket_connect_timeout=timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        )
        limiter = cls(client, prefix=prefix, timeout_s=timeout_s)
        limiter._owns_client = True
        return limiter

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- the Protocol -------------------------------------------------------------------------
    async def reserve(
        self, claims: Sequence[LimitClaim], now: float, *, pauses: Sequence[str] = ()
    ) -> float:
        if any(claim.cost > _capacity(claim) for claim in claims):
            return math.inf  # it can never fit, whatever Redis holds
        keys, figures = self._admission(claims, now, pauses)
        async with _translated():  # the batch it joins has the deadline (ScriptBatcher)
            answer = await self._admissions(keys, figures)
        if answer == _UNREADY:
            raise LimiterUnavailable("the shared limiter lost its state and is not rebuilt yet")
        wait, *used = (answer.decode() if isinstance(answer, bytes) else str(answer)).split()
        if used:  # granted: what each key now holds (admit.lua)
            self._usage.note(claims, [float(u) for u in used], now)
        return float(wait)

    def quota_use(self, now: float) -> dict[tuple[str, str], float]:
        # No scan of Redis per scrape: the figures this process's admissions brought back
        # (see herald.limits.usage).
        return self._usage.busiest(now)

    async def replay(self, claims: Sequence[LimitClaim], granted_at: float) -> None:
        keys, figures = self._admission(claims, granted_at, ())
        async with _translated(self._timeout_s):
            await self._admit(keys=[self._marker, *keys], args=["replay", figures])

    async def refund(
        self, claims: Sequence[LimitClaim], granted_at: float, *, unsent: bool = False
    ) -> None:
        call = _Call([self._rebuilt_at], [_num(granted_at), "0"])
        count = 0
        for claim in claims:
            algorithm = claim.rule.algorithm
            if not (unsent or claim.rule.refundable) or isinstance(algorithm, Pacing):
                continue  # pacing keeps no per-grant record to give back, in memory neither
            count += 1
            if isinstance(algorithm, RollingWindow):
                call.keys += [self._key("log", claim.key), self._key("sum", claim.key)]
                call.args += ["w", str(claim.cost)]
            else:
                days = _days(algorithm, granted_at)
                call.keys += [self._day_key(claim.key, d) for d in days]
                call.args += ["d", str(claim.cost), str(len(days))]
        if not count:
            return
        call.args[1] = str(count)
        async with _translated(self._timeout_s):
            await self._refund(keys=call.keys, args=call.args)

    async def block(self, key: str, until: float) -> None:
        ttl_s = math.ceil(max(0.0, until - self._wall_clock())) + _PAUSE_TTL_S
        async with _translated(self._timeout_s):
            await self._block(keys=[self._key("pause", key)], args=[_num(until), str(ttl_s)])

    async def rebuild(self, earlier: EarlierGrants) -> int | None:
        # Bounded as a whole by the rebuild lock's life: past it, another engine may rebuild.
        deadline_s = None if self._timeout_s is None else self._rebuild_lock_ms / 1000
        async with _translated(deadline_s):
            run_id = await self._run_id()
            while not await self._rebuilt(run_id):
                token = secrets.token_hex(16)
                if await self._client.set(self._lock, token, nx=True, px=self._rebuild_lock_ms):
                    try:
                        return await self._rebuild_locked(run_id, earlier)
                    finally:
                        await self._unlock(keys=[self._lock], args=[token])
                # Another engine rebuilds: wait for its marker, or for its lock to expire.
                await asyncio.sleep(self._marker_poll_s)
            return None

    # -- rebuilding ---------------------------------------------------------------------------
    async def _run_id(self) -> str:
        info = await self._client.info("server")
        return str(info["run_id"])

    async def _rebuilt(self, run_id: str) -> bool:
        marker = await self._client.get(self._marker)
        if isinstance(marker, bytes):
            marker = marker.decode()
        return marker == run_id

    async def _rebuild_locked(self, run_id: str, earlier: EarlierGrants) -> int | None:
        if await self._rebuilt(run_id):
            return None  # rebuilt while this engine waited for the lock
        await self._clear()
        grants = await earlier()
        for start in range(0, len(grants), _REPLAY_BATCH):
            keys, args = [self._marker], ["replay"]
            for granted_at, claims in grants[start : start + _REPLAY_BATCH]:
                grant_keys, figures = self._admission(claims, granted_at, ())
                keys += grant_keys
                args.append(figures)
            await self._admit(keys=keys, args=args)
        if await self._run_id() != run_id:
            # Redis restarted during the rebuild: what was replayed is gone with it.
            raise LimiterUnavailable("Redis restarted while the limiter was being rebuilt")
        # Every grant so far is older than this: none is refunded any more (refund.lua).
        rebuilt_at = _num(self._wall_clock())
        await self._client.mset({self._rebuilt_at: rebuilt_at, self._marker: run_id})
        return len(grants)

    async def _clear(self) -> None:
        """Forget the counts a previous server left (restored from a snapshot, say): the
        replay is the truth. Pauses stay."""
        for kind in ("log", "sum", "day", "tat"):
            batch: list[bytes] = []
            async for key in self._client.scan_iter(match=f"{self.prefix}:{kind}:*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    await self._client.unlink(*batch)
                    batch.clear()
            if batch:
                await self._client.unlink(*batch)

    # -- keys and arguments -------------------------------------------------------------------
    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}:{kind}:{key}"

    def _day_key(self, key: str, day: datetime) -> str:
        return f"{self.prefix}:day:{key}:{day.date().isoformat()}"

    def _admission(
        self, claims: Sequence[LimitClaim], now: float, pauses: Sequence[str]
    ) -> tuple[list[str], str]:
        """One admission's keys, and its figures packed into one argument (admit.lua). The
        keys stay apart, as Redis asks of a script's keys."""
        keys = [self._key("pause", p) for p in pauses]
        figures = [_num(now), next(self._grant_ids), str(len(pauses)), str(len(claims))]
        for claim in claims:
            self._add_claim(keys, figures, claim, now)
        return keys, " ".join(figures)

    def _add_claim(
        self, keys: list[str], figures: list[str], claim: LimitClaim, now: float
    ) -> None:
        algorithm, cost = claim.rule.algorithm, str(claim.cost)
        if isinstance(algorithm, RollingWindow):
            span = algorithm.window_s + algorithm.margin_s
            keys += [self._key("log", claim.key), self._key("sum", claim.key)]
            ttl_s = math.ceil(span) + 1
            figures += ["w", cost, str(algorithm.limit), _num(span), str(ttl_s)]
        elif isinstance(algorithm, CalendarQuota):
            days = _days(algorithm, now)
            ttl_s = _DAY_TTL_S + math.ceil(2 * algorithm.margin_s)
            keys += [self._day_key(claim.key, d) for d in days]
            figures += ["d", cost, str(algorithm.limit), str(ttl_s), str(len(days))]
            tz = zone(algorithm.timezone)
            for day in days:
                midnight = datetime.combine(day.date() + timedelta(days=1), datetime.min.time(), tz)
                figures.append(_num(midnight.timestamp() + algorithm.margin_s))
        else:
            interval = 1.0 / algorithm.rate_per_s
            keys.append(self._key("tat", claim.key))
            figures += ["g", cost, _num(interval), str(algorithm.burst)]


def _capacity(claim: LimitClaim) -> float:
    algorithm = claim.rule.algorithm
    return algorithm.burst if isinstance(algorithm, Pacing) else algorithm.limit


def _days(rule: CalendarQuota, at: float) -> list[datetime]:
    """The days (in the rule's zone) a grant at ``at`` counts against: a grant near midnight
    counts on both sides of it, as in the memory limiter."""
    tz = zone(rule.timezone)
    seen: dict[object, datetime] = {}
    for shift in (-rule.margin_s, 0.0, rule.margin_s):
        local = datetime.fromtimestamp(at + shift, tz)
        seen.setdefault(local.date(), local)
    return list(seen.values())
