"""A PostgreSQL read replica, and when the store may read from it.

Reads that may lag (listings, exports, calendars: ``Store.lagging_reads``) are served by a
streaming replica while it is fresh enough; everything else, and everything the engine
decides from, reads the primary. Two rules decide, both cheap:

- **the replica keeps up**: it is reachable and no more than ``max_lag_s`` behind (measured
  on the replica: 0 when it has replayed all it received, else the age of the last
  transaction it replayed). A replica that is away, paused or too far behind serves nothing:
  its reads go to the primary, which answers them right, only slower;
- **read your writes**: an API key that wrote records the primary's WAL position after each
  commit (``read_positions``, in the primary, so that *every* API node behind the load
  balancer sees it; :mod:`herald.readsession`). Its lag-tolerant reads go to the replica only
  once ``pg_last_wal_replay_lsn()`` has passed that position; until then, to the primary.

Why positions and not a time bound ("read the primary for N seconds after a write"): a time
bound is either long (most reads of a busy key go to the primary) or wrong (a replica
further behind than N serves a stale listing). A position is exact, costs one primary-key
read per lag-tolerant request, and needs nothing shared beyond the database itself (no
sticky sessions, no Redis).

The replica's position is read at most every ``check_s`` (each request would otherwise cost
a round trip to the replica), and once more at once when a key needs a newer position than
the one known. A cached position errs on the safe side: replicas only move forward. A read of
it that takes longer than ``timeout_s`` counts as the replica being away; an away replica is
tried again every ``retry_s``, by one request while the others go to the primary without
waiting for it, so a replica that hangs costs the listings one ``timeout_s`` at most.

A replica must be a copy of this database: its cluster's ``system_identifier`` (the same on
a primary, its standbys and a standby promoted) is compared with the primary's when it is first
reached. Another server (a mistyped URL, a standby of another cluster) never serves a read,
and says so in the log: it would answer listings with another database's rows.

Not seen from here: a standby cut off from its primary (its WAL receiver stopped) that still
answers. It has replayed all it received, so it looks current; a key's own writes still go
to the primary (their positions are ahead of it), other keys' listings would be as old as
the cut. ``pg_stat_wal_receiver`` tells, but only to roles with ``pg_read_all_stats``; watch
``pg_stat_replication`` on the primary instead (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from herald.errors import StoreError
from herald.stores.postgres_conn import Database

__all__ = ["Replica", "ReplicaStatus"]

log = logging.getLogger("herald.store")


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What was last read of the replica, at ``read_at`` (monotonic seconds)."""

    read_at: float
    reachable: bool = False
    replayed: float = -1.0  # bytes of WAL replayed; math.inf once promoted
    lag_s: float = math.inf

    def serves(self, needed: int | None, max_lag_s: float) -> bool:
        """Whether a read needing the primary's position ``needed`` may come from here."""
        if not self.reachable or self.lag_s > max_lag_s:
            return False
        return needed is None or self.replayed >= needed


class Replica:
    """The read replica's pool (opened without migrating: the primary's schema is replayed
    into it) and its freshness, read at most every ``check_s``."""

    def __init__(
        self,
        db: Database,
        *,
        max_lag_s: float,
        check_s: float,
        timeout_s: float = 2.0,
        retry_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.max_lag_s = max_lag_s
        self.check_s = check_s
        self.timeout_s = timeout_s
        self.retry_s = max(retry_s, check_s)
        self._monotonic = monotonic
        self._status = ReplicaStatus(read_at=-math.inf)
        self._reading = asyncio.Lock()
        self._opened = False
        #: The primary's ``system_identifier`` (set by the store once the primary is open):
        #: a replica whose own differs is another cluster's, and never serves.
        self.system: int | None = None
        self.foreign = False

    @property
    def status(self) -> ReplicaStatus:
        return self._status

    async def open(self) -> None:
        """Connect, once: a replica that is away does not stop the store from opening (its
        reads go to the primary); it is tried again at the next check."""
        await self._read()

    async def close(self) -> None:
        await self.db.close()
        self._opened = False

    async def serves(self, needed: int | None) -> bool:
        """Whether a lag-tolerant read that must see position ``needed`` (None: any) may be
        served by the replica now."""
        status = await self._fresh(self.check_s)
        if status.serves(needed, self.max_lag_s):
            return True
        if needed is None or not status.reachable or status.lag_s > self.max_lag_s:
            return False
        # The key's write may have been replayed since the position was read: look again.
        return (await self._fresh(0.0)).serves(needed, self.max_lag_s)

    def lost(self, error: Exception) -> None:
        """A read it served failed for want of it (a restart, a dropped connection): away from
        now on, tried again after ``retry_s`` like a replica found away by a check."""
        if self._status.reachable:
            log.warning("store.replica_unavailable", extra={"error": str(error)})
        self._status = ReplicaStatus(read_at=self._monotonic())

    async def _same_cluster(self) -> bool:
        found = await self.db.fetchval("system_identifier")
        if self.system is None or found == self.system:
            return True
        self.foreign = True
        log.error(
            "store.replica_foreign",
            extra={
                "error": "database.replica_url is not a replica of database_url (another "
                "cluster's system_identifier): it serves no read",
                "replica_system": str(found),
                "primary_system": str(self.system),
            },
        )
        await self.db.close()
        return False

    async def _fresh(self, max_age_s: float) -> ReplicaStatus:
        asked_at = self._monotonic()
        status = self._status
        if asked_at - status.read_at <= max_age_s:
            return status
        if not status.reachable and (
            asked_at - status.read_at < self.retry_s or self._reading.locked()
        ):
            return status  # away: the primary answers, nobody waits for the next try
        async with self._reading:  # one read at a time: the others take its answer
            if self._status.read_at < asked_at - max_age_s:
                self._status = await self._read()
        return self._status

    async def _read(self) -> ReplicaStatus:
        now = self._monotonic()
        if self.foreign:
            return ReplicaStatus(read_at=now)
        try:
            async with asyncio.timeout(self.timeout_s):
                if not self._opened:
                    await self.db.open()
                    self._opened = True
                    if not await self._same_cluster():
                        return ReplicaStatus(read_at=now)
                row = await self.db.fetchrow("replica_status")
        except (StoreError, TimeoutError) as exc:
            if self._status.reachable or self._status.read_at == -math.inf:
                log.warning("store.replica_unavailable", extra={"error": str(exc)})
            return ReplicaStatus(read_at=now)
        if row is None or not row["standby"]:
            # Promoted: as fresh as any primary (the writes now go to it, through a
            # multi-host URL), so it serves every read.
            return ReplicaStatus(read_at=now, reachable=True, replayed=math.inf, lag_s=0.0)
        lag_s = row["lag_s"]
        return ReplicaStatus(
            read_at=now,
            reachable=True,
            replayed=row["replayed"] if row["replayed"] is not None else -1.0,
            lag_s=math.inf if lag_s is None else float(lag_s),
        )
