"""The shared concurrency caps: leased slots in Redis, for every engine pointed at it.

Each cap key is a sorted set of the permits holding a slot (member: permit id, score: the
Unix time its lease ends). Taking the slots of a request is one Lua script
(``lua/acquire.lua``): drop the leases that ended, check every key's count against its cap,
add the permit to every key, or to none. Releasing and renewing are one script each. A
holder renews its permits every third of a lease (:mod:`herald.engine.caps_gate`), so a
killed engine's slots free within one lease.

**Time.** As in the shared limiter, the caller's ``now`` is the only clock in the arithmetic:
engines keep their clocks in step (NTP), and a lease (10 s by default) dwarfs their skew.

**Restarts.** A restarted Redis (or a failover, or a new one) comes back empty while requests
granted by the old one are still in flight; granting at once would put a cap's worth more on
the wire. So the ``:marker`` hash names the server's ``run_id``: the first acquire on a
server it does not name records the server and grants nothing until one lease later. By then
every holder still in flight has renewed its permits, which puts them back (``renew.lua``
re-adds a slot the server lost), and the counts are whole again. Nothing needs rebuilding
from the store. A Redis that cannot be reached raises :class:`~herald.errors.CapsUnavailable`:
nothing is granted blind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from herald.caps.memory import permit_id
from herald.constants import CAPS_KEY_PREFIX
from herald.errors import CapsError, CapsUnavailable
from herald.types import CapClaim, CapsFull, Permit

__all__ = ["RedisCaps"]

_BATCH = 500  # slots per round trip when releasing or renewing many


def _lua(name: str) -> str:
    return resources.files("herald.caps").joinpath("lua", name).read_text(encoding="utf-8")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisCaps:
    """Implements :class:`herald.types.ConcurrencyCaps` for every engine sharing one Redis.

    ``client`` is owned by the caller (:attr:`client`); ``prefix`` starts every key: engines
    share caps exactly when they share Redis and prefix. ``lease_s``: how long a slot
    outlives a holder that stopped renewing it."""

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = CAPS_KEY_PREFIX, lease_s: float = 10.0
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.lease_s = lease_s
        self._marker = f"{prefix}:marker"
        # A cap key outlives every lease in it; renewals and grants push it on.
        self._ttl_ms = str(math.ceil(lease_s * 2000) + 1000)
        self._acquire = client.register_script(_lua("acquire.lua"))
        self._release = client.register_script(_lua("release.lua"))
        self._renew = client.register_script(_lua("renew.lua"))

    def _key(self, key: str) -> str:
        return f"{self.prefix}:slots:{key}"

    async def acquire(
        self, claims: Sequence[CapClaim], holder: str, now: float
    ) -> Permit | CapsFull:
        claims = list({c.key: c for c in claims}.values())  # one slot per key
        permit = Permit(permit_id(holder), tuple(c.key for c in claims))
        keys = [self._marker] + [self._key(c.key) for c in claims]
        args = [repr(float(now)), repr(float(self.lease_s)), permit.id, self._ttl_ms]
        args += [str(c.limit) for c in claims]
        answer = [_text(part) for part in await self._run(self._acquire, keys, args)]
        if answer[0] == "ok":
            return permit
        full = tuple(claims[int(index) - 1].key for index in answer[2:])
        return CapsFull(float(answer[1]), full)

    async def release(self, permits: Sequence[Permit]) -> None:
        await self._each_slot(self._release, permits, [])

    async def renew(self, permits: Sequence[Permit], now: float) -> None:
        await self._each_slot(self._renew, permits, [repr(now + self.lease_s), self._ttl_ms])

    async def _each_slot(
        self, script: AsyncScript, permits: Sequence[Permit], head: list[str]
    ) -> None:
        """Run ``script`` over every (cap key, permit) pair, a batch per round trip."""
        pairs = [(self._key(key), p.id) for p in permits for key in p.keys]
        for start in range(0, len(pairs), _BATCH):
            batch = pairs[start : start + _BATCH]
            await self._run(script, [k for k, _ in batch], head + [m for _, m in batch])

    @staticmethod
    async def _run(script: AsyncScript, keys: list[str], args: list[str]) -> Any:
        """One script call, its Redis errors translated (the driver's kept as the cause)."""
        try:
            return await script(keys=keys, args=args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise CapsUnavailable(f"the caps' Redis cannot be reached: {exc}") from exc
        except RedisError as exc:
            raise CapsError(f"Redis refused a caps command: {exc}") from exc
