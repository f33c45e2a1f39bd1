"""The Redis Streams queue: jobs shared by the dispatchers and workers of several processes.

One stream per platform and region (``herald:v1:jobs:facebook:eu``), read by one consumer
group: each entry goes to one consumer of the group. Jobs are added, several an entry
(:mod:`herald.queues.bundles`), with ``XADD MAXLEN ~`` (bounded), read with ``XREADGROUP``, and
an entry is acked and deleted once the engine has written the outcome of its last job.
Entries a consumer read and never acked (it died) are taken over by another with
``XAUTOCLAIM`` once they have been idle ``claim_idle_s``; a live consumer touches the entries it
holds every half of that, so they are not taken from it.

Nothing here is the truth about a delivery: the store is. Every job is a claimed delivery under
a lease, so a message lost (trimmed, a Redis restart without persistence) only delays the
delivery until its lease runs out, and a message delivered twice (taken over from a consumer
that was slow rather than dead) is harmless: the claim token and the guarded ``publishing``
write let one worker send, and make the other's writes fail.

Reads block on a connection of their own, for at most ``block_s``; ``close()`` wakes a blocked
read with ``CLIENT UNBLOCK`` instead of cancelling a command in flight.

``depth()`` must answer without a round trip: it returns a figure kept from the last answer
Redis gave (the group's ``lag``, refreshed with every put and after every read, so at least every
``block_s`` while a ``get`` waits), plus the jobs read and not yet handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from importlib.resources import files
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from herald.constants import (
    DEFAULT_REGION,
    REDIS_QUEUE_GROUP,
    REDIS_QUEUE_PREFIX,
    REDIS_QUEUE_VERSION,
)
from herald.domain import Job, Platform
from herald.errors import QueueError, QueueUnavailable
from herald.queues.acks import LingeringAcks
from herald.queues.bundles import Sizes, bundles, messages_within
from herald.queues.handout import Handout
from herald.queues.wire import UndecodableJob, decode_job, decode_jobs, encode_jobs

__all__ = ["RedisStreamQueue", "consumer_name", "stream_key"]

log = logging.getLogger("herald.queues.redis")

_TAKE_BACK = files("herald.queues").joinpath("lua/take_back.lua").read_text()
_PENDING_LOOKED_AT = 64  # pending entries read to compute when the next take-over is due
_NO_ENTRY = "0-0"
_ONE_JOB_VERSION = "1"  # the format before entries carried several jobs: still read

Entry = tuple[str, str]  # (stream key, entry id)


def stream_key(prefix: str, platform: Platform, region: str) -> str:
    return f"{prefix}:{platform.value}:{region}"


def consumer_name() -> str:
    """Unique per process and per queue: host, pid and a random part (a restarted process
    with the same pid must not inherit a dead one's entries as its own)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


class RedisStreamQueue:
    """Implements :class:`herald.types.JobQueue` over Redis Streams.

    ``redis``: a URL (the queue then owns its client) or a ``redis.asyncio.Redis`` client with
    ``decode_responses`` off (the caller closes it). ``platforms`` and ``region``: the streams
    this queue reads (none: a queue that only puts). A job is put into the stream of its
    platform and its channel's region, ``region`` for a channel without one.
    ``max_len``: each stream is trimmed to about this many entries. ``claim_idle_s``: entries
    of a consumer idle this long are taken over; keep it well under the engine's lease.
    ``block_s``: the longest a read waits in Redis before the queue looks again (depth,
    take-overs, close). ``bundle``: jobs one entry carries at most. ``read_count``: jobs read
    per round trip at most: a read counts entries per stream, so as many from each as together
    cannot hold more (one from each, if an entry may hold more on its own). Acks go in
    pipelines of up to ``ack_batch`` entries, each waiting ``ack_linger_s`` at most for others
    to join it.
    """

    def __init__(
        self,
        redis: str | Redis,
        *,
        platforms: Iterable[Platform] = tuple(Platform),
        region: str = DEFAULT_REGION,
        prefix: str = REDIS_QUEUE_PREFIX,
        group: str = REDIS_QUEUE_GROUP,
        consumer: str | None = None,
        max_len: int = 100_000,
        claim_idle_s: float = 60.0,
        block_s: float = 5.0,
        read_count: int = 10,
        bundle: int = 16,
        connect_timeout_s: float = 5.0,
        ack_batch: int = 64,
        ack_linger_s: float = 0.05,
        on_redelivered: Callable[[int], None] | None = None,
    ) -> None:
        if min(max_len, claim_idle_s, block_s, read_count, bundle) <= 0:
            raise ValueError(
                "max_len, claim_idle_s, block_s, read_count and bundle must be positive"
            )
        self._owned = isinstance(redis, str)
        self._redis = (
            Redis.from_url(
                redis,
                socket_connect_timeout=connect_timeout_s,
                # A read may wait block_s in Redis: the socket waits that long and a margin.
                socket_timeout=block_s + connect_timeout_s,
            )
            if isinstance(redis, str)
            else redis
        )
        self._take_back = self._redis.register_script(_TAKE_BACK)
        # Told how many jobs were taken over from a consumer that went away (a metric).
        self._on_redelivered = on_redelivered
        self.region = region
        self.group = group
        self.consumer = consumer or consumer_name()
        self._prefix = prefix
        self._max_len = max_len
        self._claim_idle_ms = int(claim_idle_s * 1000)
        self._block_s = block_s
        # Jobs per entry: what an entry another process added is taken to hold when the depth
        # is counted in jobs.
        self._sizes = Sizes(bundle)
        self._place: dict[str, tuple[Platform, str]] = {}  # stream key: (platform, region)
        self._streams = [self._key(p, region) for p in dict.fromkeys(platforms)]
        # Redis counts a read per stream: entries that together cannot hold more than
        # read_count jobs.
        self._read_entries = messages_within(read_count, bundle, len(self._streams))
        self._grouped: set[str] = set()  # streams whose group this queue has made sure of
        self._handout: Handout[Entry] = Handout()  # read, and not handed out or not acked
        self._held: dict[Entry, int] = {}  # both of the above: each with its jobs not acked
        # Acked by the engine, not yet sent to Redis.
        self._acks: LingeringAcks[Entry] = LingeringAcks(
            self._settle,
            batch=ack_batch,
            linger_s=ack_linger_s,
            after_timed=self._release_client_if_done,
        )
        # Per stream, by entry id, the jobs of each entry put by this queue and maybe unread.
        self._added: dict[str, dict[str, Sequence[Job]]] = {}
        self._lag: dict[str, int] = {}  # per stream: entries no consumer has read
        self._fetching: asyncio.Task[None] | None = None
        # Reads block on a connection of their own, which close() wakes with CLIENT UNBLOCK
        # rather than by cancelling a command in flight.
        self._reader: Redis | None = None
        self._reader_id: int | None = None
        self._closing: asyncio.Future[None] | None = None  # done once closed: wakes getters
        self._reclaim_at = 0.0  # loop time of the next take-over pass: the first read
        self._cursor: dict[str, str] = {}  # per stream: where the take-over scan goes on
        self._closed = False
        self._taking_back = False  # close() is under way: the client stays open
        self.undecodable = 0  # messages dropped because they held no readable job

    def _key(self, platform: Platform, region: str) -> str:
        key = stream_key(self._prefix, platform, region)
        self._place[key] = (platform, region)
        return key

    def _key_of(self, job: Job) -> str:
        return self._key(job.delivery.platform, job.channel.region_or(self.region))

    # -- the JobQueue protocol --------------------------------------------------------------
    async def put(self, jobs: Sequence[Job]) -> None:
        if self._closed:
            raise QueueError("the queue is closed")
        if not jobs:
            return
        by_stream: dict[str, list[Job]] = {}
        for job in jobs:
            by_stream.setdefault(self._key_of(job), []).append(job)
        streams = list(by_stream)
        await self._ensure_groups(streams)
        # Several jobs an entry: an entry costs the client a command to write and one to ack,
        # and the reader its parsing, far more than a job in it.
        entries = [
            (key, part)
            for key, some in by_stream.items()
            for part in bundles(some, self._sizes.most)
        ]
        pipe = self._redis.pipeline(transaction=False)
        for key, part in entries:
            message = {"v": REDIS_QUEUE_VERSION, "jobs": encode_jobs(part)}
            pipe.xadd(key, message, maxlen=self._max_len, approximate=True)  # type: ignore[arg-type]
        self._queue_depth_reads(pipe, streams)
        answers = await self._run(pipe.execute())
        for (key, part), entry_id in zip(entries, answers, strict=False):
            self._added.setdefault(key, {})[_text(entry_id)] = part
            self._sizes.learn(len(part))
        self._read_depths(streams, answers[len(entries) :])

    async def get(self) -> Job:
        while True:
            if self._closed:
                raise QueueError("the queue is closed")
            job = self._handout.hand_out()
            if job is not None:
                return job
            # One read at a time for all getters: entries are handed out in stream order.
            fetching = self._fetching
            if fetching is None:
                fetching = self._fetching = asyncio.create_task(self._fetch())
            await asyncio.wait([fetching, self._closed_signal()], return_when="FIRST_COMPLETED")
            if not fetching.done():
                continue  # closed meanwhile
            if self._fetching is fetching:
                self._fetching = None
            if not fetching.cancelled() and (error := fetching.exception()) is not None:
                raise error

    async def ack(self, job: Job) -> None:
        entry = self._handout.finish(job)
        if entry is None:
            return
        if not self._last_of(entry):
            return  # an entry is acked with its last job
        # Acks linger to go as one pipeline with others (herald.queues.acks).
        await self._acks.add(entry, now=self._closed)
        if self._closed:
            await self._release_client_if_done()

    def depth(self) -> int:
        if self._closed:
            return 0
        return sum(self._waiting(key) for key in self._lag) + len(self._handout.ready)

    def _last_of(self, entry: Entry) -> bool:
        """One job of ``entry`` is done: True if it was the last (the entry is no longer held)."""
        left = self._held.get(entry, 1) - 1
        if left > 0:
            self._held[entry] = left
            return False
        self._held.pop(entry, None)
        return True

    def _waiting(self, key: str) -> int:
        """Jobs in the entries of ``key`` no consumer has read (this queue's own are those it
        added after the group's last read, see _forget_read)."""
        return self._sizes.waiting(self._lag.get(key, 0), self._added.get(key, {}).values())

    async def close(self) -> list[Job]:
        if self._closed:
            return []
        self._closed = True
        self._taking_back = True  # a timed ack flush ending meanwhile keeps the client open
        self._closed_signal().set_result(None)
        await self._stop_reading()
        ready = self._handout.take_ready()
        # An entry some of whose jobs are handed out is acked with the last of them.
        done = [entry for entry, _ in ready if self._last_of(entry)]
        try:
            # Read and never handed out: the engine releases these jobs, so no one else may
            # take them over. Added and never read: taken back, as if never added.
            await self._settle(done)
            await self._acks.flush()
            unread = await self._take_back_unread()
        finally:
            self._taking_back = False
            await self._release_client_if_done()
        return [job for _, job in ready] + unread

    def unread(self) -> Collection[Job]:
        return [job for added in self._added.values() for part in added.values() for job in part]

    # -- beyond the protocol ----------------------------------------------------------------
    def depths(self) -> Mapping[tuple[Platform, str], int]:
        """Jobs waiting per (platform, region), as last seen: what an autoscaler reads."""
        counts = {self._place[key]: self._waiting(key) for key in self._lag}
        for (key, _), _job in self._handout.ready:
            counts[self._place[key]] = counts.get(self._place[key], 0) + 1
        return counts

    async def refresh_depth(self) -> None:
        """Ask Redis for the figures :meth:`depth` and :meth:`depths` return."""
        streams = list(dict.fromkeys([*self._streams, *self._added]))
        await self._ensure_groups(streams)
        pipe = self._redis.pipeline(transaction=False)
        self._queue_depth_reads(pipe, streams)
        self._read_depths(streams, await self._run(pipe.execute(raise_on_error=False)))

    # -- reading ----------------------------------------------------------------------------
    def _closed_signal(self) -> asyncio.Future[None]:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_future()
        return self._closing

    async def _stop_reading(self) -> None:
        """Wake a read blocked in Redis and let it finish (what it read is kept as ready).
        Should Redis not answer, the read is given up after the longest it may block."""
        fetching, self._fetching = self._fetching, None
        if fetching is not None and not fetching.done():
            if self._reader_id is not None:
                with contextlib.suppress(QueueError):
                    await self._run(self._redis.client_unblock(self._reader_id))
            await asyncio.wait([fetching], timeout=self._block_s + 1.0)
            if not fetching.done():
                fetching.cancel()
                return  # its connection goes with it
        if self._reader is not None:
            await self._reader.aclose()
            self._reader = None

    async def _reading_client(self) -> Redis:
        if self._reader is None:
            self._reader = self._redis.client()
        if self._reader_id is None:
            self._reader_id = int(await self._run(self._reader.client_id()))
        return self._reader

    async def _fetch(self) -> None:
        """Read until at least one job is ready, taking over dead consumers' entries when the
        next pass is due, else waiting in Redis for new entries until then."""
        if not self._streams:
            raise QueueError("this queue reads no platform")
        loop = asyncio.get_running_loop()
        while not self._handout.ready and not self._closed:
            now = loop.time()
            if now >= self._reclaim_at:
                await self._reclaim(now)
                continue
            await self._read(min(self._block_s, self._reclaim_at - now))

    async def _read(self, block_s: float) -> None:
        await self._ensure_groups(self._streams)
        reader = await self._reading_client()
        try:
            read = await self._run(
                reader.xreadgroup(
                    self.group,
                    self.consumer,
                    dict.fromkeys(self._streams, ">"),
                    count=self._read_entries,
                    block=max(1, int(block_s * 1000)),
                )
            )
        except QueueUnavailable:
            self._reader_id = None  # a new connection has a new id
            raise
        except QueueError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._grouped.clear()  # a stream was deleted: make the groups again
            return
        await self.refresh_depth()  # after the read: what it took is ready, not waiting
        dropped: list[Entry] = []
        for key, entries in read or ():
            for entry_id, fields in entries:
                self._accept((_text(key), _text(entry_id)), fields, dropped)
        await self._drop(dropped)

    async def _reclaim(self, now: float) -> None:
        """Take over entries idle longer than ``claim_idle_s``, touch this queue's own, and
        compute when the next pass is due (nothing can become idle enough before)."""
        idle_s = self._claim_idle_ms / 1000
        next_at = now + idle_s / 2  # this queue's own entries are touched at least that often
        await self._ensure_groups(self._streams)
        pipe = self._redis.pipeline(transaction=False)
        mine: dict[str, list[Any]] = {}  # entry ids, as redis-py types them
        for entry in self._held:
            mine.setdefault(entry[0], []).append(entry[1])
        for key in self._streams:
            start = self._cursor.get(key, _NO_ENTRY)
            count = self._read_entries
            pipe.xautoclaim(key, self.group, self.consumer, self._claim_idle_ms, start, count)
            pipe.xpending_range(key, self.group, "-", "+", _PENDING_LOOKED_AT)
            if mine.get(key):
                pipe.xclaim(key, self.group, self.consumer, 0, mine[key], justid=True)
        answers = iter(await self._run(pipe.execute()))
        dropped: list[Entry] = []
        for key in self._streams:
            cursor, claimed, *_ = next(answers)
            pending = next(answers)
            if mine.get(key):
                next(answers)
            for entry_id, fields in claimed:
                self._accept((key, _text(entry_id)), fields, dropped, taken_over=True)
            # A long list of pending entries is scanned a window per pass, passes one after
            # the other until the scan is through; then the next is due when computed below.
            self._cursor[key] = _text(cursor)
            if self._cursor[key] != _NO_ENTRY:
                next_at = now
            for row in pending:
                if (key, _text(row["message_id"])) not in self._held:
                    left_s = idle_s - row["time_since_delivered"] / 1000
                    next_at = min(next_at, now + max(left_s, 0.0))
        self._reclaim_at = next_at
        await self._drop(dropped)

    def _accept(
        self,
        entry: Entry,
        fields: Mapping[Any, Any] | None,
        dropped: list[Entry],
        *,
        taken_over: bool = False,
    ) -> None:
        if entry in self._held:
            return  # already this queue's (handed out or ready): touched, not taken again
        try:
            jobs = self._decode(fields)
        except UndecodableJob as exc:
            self.undecodable += 1
            where = {"stream": entry[0], "entry": entry[1], "error": str(exc)}
            log.error("queue.undecodable", extra=where)
            dropped.append(entry)
            return
        self._sizes.learn(len(jobs))
        self._held[entry] = len(jobs)
        if taken_over and self._on_redelivered is not None:
            self._on_redelivered(len(jobs))
        for job in jobs:
            if taken_over:
                where = {"stream": entry[0], "entry": entry[1], "delivery_id": job.delivery.id}
                log.info("queue.taken_over", extra=where)
            self._handout.receive(entry, job)

    @staticmethod
    def _decode(fields: Mapping[Any, Any] | None) -> list[Job]:
        if not fields:
            raise UndecodableJob("an empty entry")
        named = {_text(name): value for name, value in fields.items()}
        version = _text(named.get("v", b""))
        if version == REDIS_QUEUE_VERSION:
            return decode_jobs(named.get("jobs", b""))
        if version == _ONE_JOB_VERSION:  # added by a dispatcher of the version before
            return [decode_job(named.get("job", b""))]
        raise UndecodableJob(f"format version {version!r}, expected {REDIS_QUEUE_VERSION}")

    async def _drop(self, entries: list[Entry]) -> None:
        """Ack and delete messages that hold no job: retrying them could never help."""
        if entries:
            await self._settle(entries)

    # -- writing ----------------------------------------------------------------------------
    async def _settle(self, entries: Sequence[Entry]) -> None:
        """Ack and delete ``entries``: the stream keeps only work not yet finished."""
        if not entries:
            return
        by_stream: dict[str, list[str]] = {}
        for key, entry_id in entries:
            by_stream.setdefault(key, []).append(entry_id)
        # One XACK and one XDEL per stream, each naming every entry: a command costs the
        # client far more than an id in it.
        pipe = self._redis.pipeline(transaction=False)
        for key, ids in by_stream.items():
            pipe.xack(key, self.group, *ids)
            pipe.xdel(key, *ids)
        await self._run(pipe.execute())

    async def _take_back_unread(self) -> list[Job]:
        taken: list[Job] = []
        for key, added in self._added.items():
            if not added:
                continue
            ids = await self._run(self._take_back(keys=[key], args=[self.group, *added]))
            back = {_text(i) for i in ids}
            taken += [job for entry_id, part in added.items() if entry_id in back for job in part]
        self._added.clear()
        self._lag.clear()
        return taken

    async def _ensure_groups(self, streams: Iterable[str]) -> None:
        """Make each stream and its group if missing. The group starts at the stream's first
        entry, so jobs added before any worker started are read too."""
        missing = [key for key in streams if key not in self._grouped]
        if not missing:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key in missing:
            pipe.xgroup_create(key, self.group, id="0", mkstream=True)
        answers = await self._run(pipe.execute(raise_on_error=False))
        for key, answer in zip(missing, answers, strict=True):
            if isinstance(answer, Exception) and not str(answer).startswith("BUSYGROUP"):
                raise QueueError(f"cannot make the group of {key}: {answer}") from answer
            self._grouped.add(key)

    # -- depth ------------------------------------------------------------------------------
    def _queue_depth_reads(self, pipe: Any, streams: Sequence[str]) -> None:
        for key in streams:
            pipe.xinfo_groups(key)
            pipe.xlen(key)

    def _read_depths(self, streams: Sequence[str], answers: Sequence[Any]) -> None:
        for n, key in enumerate(streams):
            groups, length = answers[2 * n], answers[2 * n + 1]
            if isinstance(groups, Exception) or isinstance(length, Exception):
                if "no such key" not in str(groups).lower():
                    raise QueueError(f"Redis refused a queue command: {groups or length}")
                # The stream is gone (Redis restarted without persistence): what this queue
                # put there is lost, and its claims lapse; the group is made again.
                self._grouped.discard(key)
                self._added.pop(key, None)
                self._lag[key] = 0
                continue
            if not any(_text(g["name"]) == self.group for g in groups):
                self._grouped.discard(key)  # made again at the next put or read
            for group in groups:
                if _text(group["name"]) != self.group:
                    continue
                lag = group.get("lag")
                # Redis cannot always tell the lag (entries deleted after the group's
                # position): every entry in the stream is then unread or pending.
                self._lag[key] = lag if lag is not None else max(0, length - group["pending"])
                self._forget_read(key, _text(group["last-delivered-id"]))

    def _forget_read(self, key: str, last_delivered: str) -> None:
        """Entries this queue added that the group has read are no longer its to take back."""
        added = self._added.get(key)
        if not added:
            return
        last = _id(last_delivered)
        for entry_id in list(added):
            if _id(entry_id) > last:
                break  # ids were added in increasing order
            del added[entry_id]

    # -- the connection ---------------------------------------------------------------------
    async def _run(self, call: Awaitable[Any]) -> Any:
        """Await a Redis call, translating its errors into Herald's."""
        try:
            return await call
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            raise QueueUnavailable(f"Redis cannot be reached: {exc}") from exc
        except redis_errors.RedisError as exc:
            raise QueueError(f"Redis refused a queue command: {exc}") from exc

    async def _release_client_if_done(self) -> None:
        """Close an owned client once closed and every job handed out is acked."""
        done = self._handout.all_acked and not self._acks.busy and not self._taking_back
        if self._owned and self._closed and done:
            await self._redis.aclose()
