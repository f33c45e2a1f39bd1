"""The RabbitMQ queue: jobs shared by the dispatchers and workers of several processes.

One durable quorum queue per platform and region (``herald.v1.jobs.facebook.eu``), fed by one
direct exchange with routing key ``facebook.eu`` (:class:`~herald.queues.amqp.Topology` says why,
and how a message redelivered too often is dead-lettered). Publishers and consumers both declare
what they use, idempotently, so either may start first.

``put`` publishes a batch at once, several jobs a message (:mod:`herald.queues.bundles`),
persistent, on a channel in confirm mode, and returns once the broker has confirmed every
message. ``get`` consumes with manual acks (from the first ``get`` on; a queue that reads no
platform only puts), about ``prefetch`` jobs unacked at a time. ``ack`` acks the job's message
once its last job is acked, which the engine does once the outcome is written; acks linger
up to a quarter of a second, to go several in one frame. A message that holds no job is rejected to
the dead-letter exchange and counted in :attr:`RabbitQueue.undecodable`, never handed out.

Nothing here is the truth about a delivery: the store is. Every job is a claimed delivery under
a lease, so a message lost only delays the delivery until its lease runs out, and a message
delivered twice (redelivered after a consumer's connection died, or after a restart of the
broker) is harmless: the claim token and the guarded ``publishing`` write let one worker send,
and make the other's writes fail.

``close()`` stops consuming and returns, acked so that nobody else takes them, the jobs received
and never handed out, then the jobs this queue put that are still at the head of their queue,
taken back with ``basic.get``: the engine releases them in the store, so they must leave the
broker. Unlike a Redis stream, a queue cannot be searched for one's own messages: the take-back
stops at the first message another publisher put (returned to the head of its queue with a
requeue, which the quorum queue counts as a delivery), and this queue's jobs behind it stay for
the workers, still claimed. Jobs handed out and not acked go back to the broker when the
connection closes, once every one of them was acked or at the latest when the process ends.

When the broker cannot be reached, calls raise :class:`~herald.errors.QueueUnavailable` within
``timeout_s`` (never hang), and a ``get`` waiting when the connection is lost raises it too. The
next call connects again, so the queue works again once the broker is back. Messages received
on the lost connection are forgotten: the broker hands them out again, to this queue or another.
Their acks cannot be sent any more, and ``ack`` lets them go silently.

``depth()`` answers without a round trip: the broker's count of ready messages, asked after
every put, before consuming starts and every ``refresh_s`` while consuming, minus the
deliveries received since, plus the jobs received and not yet handed out. Between two counts it
may be off by the messages in flight at the moment of the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection
from pamqp import commands as spec

from herald.constants import DEFAULT_REGION, RABBIT_QUEUE_PREFIX, RABBIT_QUEUE_VERSION
from herald.domain import Job, Platform
from herald.errors import QueueError, QueueUnavailable
from herald.queues.acks import LingeringAcks
from herald.queues.amqp import Delivered, Link, Outgoing, Topology
from herald.queues.bundles import Sizes, bundles, messages_within
from herald.queues.handout import Handout
from herald.queues.wire import UndecodableJob, decode_job, decode_jobs, encode_jobs

__all__ = ["RabbitQueue"]

log = logging.getLogger("herald.queues.rabbitmq")

Place = tuple[Platform, str]  # (platform, region): one queue
_ONE_JOB_VERSION = "1"  # the format before messages carried several jobs: still read


@dataclass(eq=False, slots=True)
class _Received:
    """A message delivered to this queue: on which link, under which tag, from which queue,
    and how many of its jobs are not finished yet (it is acked when none is left)."""

    link: Link
    tag: int
    queue: str
    left: int


def _message(place: Place, jobs: Sequence[Job], message_id: str) -> Outgoing:
    properties = spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT.value,
        message_id=message_id,
        headers={"v": RABBIT_QUEUE_VERSION, "jobs": len(jobs)},
    )
    return Topology.routing_key(*place), encode_jobs(jobs), properties


def _decode(message: Delivered) -> list[Job]:
    headers = message.header.properties.headers or {}
    version = headers.get("v")
    if isinstance(version, bytes):
        version = version.decode()
    if version == RABBIT_QUEUE_VERSION:
        return decode_jobs(message.body)
    if version == _ONE_JOB_VERSION:  # put by a dispatcher of the version before: one job
        return [decode_job(message.body)]
    raise UndecodableJob(f"format version {version!r}, expected {RABBIT_QUEUE_VERSION}")


class RabbitQueue:
    """Implements :class:`herald.types.JobQueue` over RabbitMQ quorum queues.

    ``broker``: an ``amqp://`` URL (the queue then owns its connection) or an aio-pika
    connection (the caller closes it; the queue opens channels of its own on it).
    ``platforms`` and ``region``: the queues this queue consumes (none: a queue that only
    puts). A job is put into the queue of its platform and its channel's region, ``region`` for
    a channel without one. ``prefix``: of every name on the broker. ``bundle``: jobs one
    message carries at most. ``prefetch``: jobs received and not finished at most (what the
    worker holds): the broker's window of unacked messages counts messages, per consumer (one a
    queue read), so each is as many as together cannot hold more jobs than that (one, if a
    message may hold more on its own), whatever the size of the messages that come.
    ``delivery_limit``: deliveries of one message before it is dead-lettered. ``refresh_s``:
    how often :meth:`depth`'s figure
    is asked for while consuming. ``connect_timeout_s``: to connect; ``timeout_s``: for any
    other answer of the broker (a put's confirms included). ``ack_linger_s`` and ``ack_batch``:
    a message's ack waits up to that long for others, and goes at once when that many wait
    (default: a quarter of ``prefetch`` in full messages, so that lingering acks hold little
    of the window).
    A quarter of a second rather than less: a worker's messages end farther apart than 50 ms
    as soon as four workers share the traffic (about 14 a second each in the benchmark), so
    each ack went alone, a timer, a task, a frame and a socket write per message, and a tag
    alone is seldom one a ``multiple`` ack can cover with others.
    """

    def __init__(
        self,
        broker: str | AbstractConnection,
        *,
        platforms: Iterable[Platform] = tuple(Platform),
        region: str = DEFAULT_REGION,
        prefix: str = RABBIT_QUEUE_PREFIX,
        prefetch: int = 64,
        bundle: int = 8,
        delivery_limit: int = 5,
        refresh_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        timeout_s: float = 10.0,
        ack_batch: int | None = None,
        ack_linger_s: float = 0.25,
        on_redelivered: Callable[[int], None] | None = None,
    ) -> None:
        if min(prefetch, bundle, delivery_limit, refresh_s, connect_timeout_s, timeout_s) <= 0:
            raise ValueError("prefetch, bundle, delivery_limit and the durations must be positive")
        self.region = region
        self._broker = broker
        # Told how many jobs the broker handed out again (their consumer went away): a metric.
        self._on_redelivered = on_redelivered
        self._topology = Topology(prefix, delivery_limit)
        # Jobs per message: what a message another process put is taken to hold when the
        # depth is counted in jobs.
        self._sizes = Sizes(bundle)
        self._refresh_s = refresh_s
        self._connect_timeout_s = connect_timeout_s
        self._timeout_s = timeout_s
        self._reads: list[Place] = [(p, region) for p in dict.fromkeys(platforms)]
        # The broker's window counts messages, per consumer (one a queue read): as many as
        # together cannot hold more than prefetch jobs.
        self._window = messages_within(prefetch, bundle, len(self._reads))
        self._place: dict[str, Place] = {}  # queue name: (platform, region)
        self._link: Link | None = None
        self._linking = asyncio.Lock()  # one connection at a time, consumers started once
        self._refresher: asyncio.Task[None] | None = None
        self._handout: Handout[_Received] = Handout()  # received, not handed out or acked
        # Per queue, by message id, the jobs of each message put here, and maybe still in the
        # broker (what close() may take back).
        self._unread: dict[str, dict[str, Sequence[Job]]] = {}
        self._lag: dict[str, int] = {}  # per queue: messages ready, as last counted
        self._signal: asyncio.Future[None] | None = None  # done when a getter should look
        self._acks: LingeringAcks[tuple[Link, int]] = LingeringAcks(
            self._send_acks,
            batch=ack_batch or max(1, prefetch // (4 * bundle)),
            linger_s=ack_linger_s,
            after_timed=self._release_link_if_done,
        )
        self._taking_back = False  # close() is under way: the link stays open
        self._closed = False
        self.undecodable = 0  # messages dead-lettered because they held no readable job

    def _queue(self, place: Place) -> str:
        name = self._topology.queue(*place)
        self._place[name] = place
        return name

    def _place_of(self, job: Job) -> Place:
        return job.delivery.platform, job.channel.region_or(self.region)

    # -- the JobQueue protocol --------------------------------------------------------------
    async def put(self, jobs: Sequence[Job]) -> None:
        if self._closed:
            raise QueueError("the queue is closed")
        if not jobs:
            return
        link = await self._linked()
        by_place: dict[Place, list[Job]] = {}
        for job in jobs:
            by_place.setdefault(self._place_of(job), []).append(job)
        await link.declare(by_place)
        # Several jobs a message: a message costs the publisher, the broker and the consumer
        # far more than a job in it (frames, a confirm, an ack).
        messages = [
            (place, part, secrets.token_hex(8))
            for place, some in by_place.items()
            for part in bundles(some, self._sizes.most)
        ]
        await link.publish([_message(place, part, mid) for place, part, mid in messages])
        for place, part, message_id in messages:
            self._unread.setdefault(self._queue(place), {})[message_id] = part
            self._sizes.learn(len(part))
        await self._count(link, [self._queue(place) for place in by_place])

    async def get(self) -> Job:
        while True:
            if self._closed:
                raise QueueError("the queue is closed")
            job = self._handout.hand_out()
            if job is not None:
                return job
            link = await self._consuming()
            if self._handout.ready or self._closed:
                continue  # received (or closed) while consuming started
            waits: list[asyncio.Future[Any]] = [self._wakeup(), link.lost]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if link.lost.done() and not self._closed:
                raise QueueUnavailable(link.lost.result())

    async def ack(self, job: Job) -> None:
        received = self._handout.finish(job)
        if received is None:
            return
        received.left -= 1
        if received.left > 0:
            return  # the message is acked with its last job
        if not received.link.alive:
            # Received on a connection since lost: the broker gave the message out again.
            log.info("queue.ack_lost", extra={"delivery_id": job.delivery.id})
            await self._release_link_if_done()
            return
        # Acks linger to go several in one frame where the tags allow (see Link.ack).
        await self._acks.add((received.link, received.tag), now=self._closed)
        if self._closed:
            await self._release_link_if_done()

    async def _send_acks(self, acks: list[tuple[Link, int]]) -> None:
        by_link: dict[Link, list[int]] = {}
        for link, tag in acks:
            by_link.setdefault(link, []).append(tag)
        for link, tags in by_link.items():
            if not link.alive:  # the broker gives those messages out again
                continue
            try:
                await link.ack(tags)
            except QueueError as exc:
                # One link's failure must not cost the others' acks: they go on.
                log.warning("queue.acks_lost", extra={"tags": len(tags), "error": str(exc)})

    def depth(self) -> int:
        if self._closed:
            return 0
        return sum(self._waiting(name) for name in self._lag) + len(self._handout.ready)

    def _waiting(self, queue: str) -> int:
        """Jobs in the messages ready in ``queue`` (this queue's own are the last it put and
        still holds as unread, see _count)."""
        return self._sizes.waiting(self._lag.get(queue, 0), self._unread.get(queue, {}).values())

    async def close(self) -> list[Job]:
        if self._closed:
            return []
        self._closed = True
        # Until the take-back is over, nothing may close the link: an ack flush that was
        # under way when close() began ends meanwhile, and would find every ack sent.
        self._taking_back = True
        self._wake()
        returned: list[Job] = []
        try:
            await self._acks.flush()  # before the take-back, which acks and rejects by tag too
            if self._refresher is not None:
                self._refresher.cancel()
            link = self._link
            if link is not None and link.alive:
                try:
                    await link.stop_consuming()
                    await self._settle_ready(link, returned)
                    await self._take_back(link, returned)
                except QueueError as exc:
                    # What was not taken back stays in the broker, or goes back to it with
                    # the connection: workers take it, and the store's claims keep it sent
                    # once.
                    log.warning("queue.take_back_failed", extra={"error": str(exc)})
        finally:
            self._taking_back = False
        self._handout.take_ready()
        self._unread.clear()
        self._lag.clear()
        await self._release_link_if_done()
        return returned

    def unread(self) -> Collection[Job]:
        # Only the last ``ready`` messages put into a queue can still be in it (_count): a
        # quorum queue keeps them over a broker restart, so none is taken for lost.
        return [job for unread in self._unread.values() for part in unread.values() for job in part]

    # -- beyond the protocol ----------------------------------------------------------------
    def depths(self) -> Mapping[Place, int]:
        """Jobs waiting per (platform, region), as last seen: what an autoscaler reads."""
        counts = {self._place[name]: self._waiting(name) for name in self._lag}
        for received, _job in self._handout.ready:
            place = self._place[received.queue]
            counts[place] = counts.get(place, 0) + 1
        return counts

    async def refresh_depth(self) -> None:
        """Ask the broker for the figures :meth:`depth` and :meth:`depths` return."""
        if self._closed:
            return
        link = await self._linked()
        places = dict.fromkeys([*self._reads, *(self._place[name] for name in self._lag)])
        await link.declare(places)
        await self._count(link, [self._queue(place) for place in places])

    # -- the link ---------------------------------------------------------------------------
    async def _linked(self) -> Link:
        """The live link, connecting anew if there is none (raises QueueUnavailable)."""
        link = self._link
        if link is not None and link.alive:
            return link
        async with self._linking:
            return await self._relink()

    async def _relink(self) -> Link:
        """Under ``_linking``: the live link, or a new one in place of a lost one."""
        old = self._link
        if old is not None and old.alive:
            return old
        if old is not None:
            await old.close()
        self._link = await Link.open(
            self._broker,
            topology=self._topology,
            prefetch=self._window,
            connect_timeout_s=self._connect_timeout_s,
            timeout_s=self._timeout_s,
        )
        self._link.lost.add_done_callback(partial(self._forget, self._link))
        return self._link

    def _forget(self, link: Link, _lost: asyncio.Future[str]) -> None:
        """``link`` is lost: what it received and did not hand out, the broker hands out again."""
        self._handout.take_ready(lambda received: received.link is link)
        if link is self._link:
            log.warning("queue.connection_lost", extra={"error": _lost.result()})
        self._wake()

    async def _consuming(self) -> Link:
        """The live link, consuming every queue this queue reads."""
        if not self._reads:
            raise QueueError("this queue reads no platform")
        link = self._link
        if link is not None and link.alive and link.consuming:
            return link
        async with self._linking:
            link = await self._relink()
            if link.consuming:
                return link
            await link.declare(self._reads)
            names = [self._queue(place) for place in self._reads]
            # Counted before consuming: every delivery that follows was counted as ready.
            await self._count(link, names)
            for name in names:
                await link.consume(name, partial(self._received, link, name))
            self._refresher = asyncio.create_task(self._keep_counting(link, names))
            return link

    async def _received(self, link: Link, queue: str, message: Delivered) -> None:
        """A delivery's callback: the job goes to the ready ones; no await before that, so that
        deliveries are taken in the order they came (see :mod:`herald.queues.amqp`)."""
        tag = message.delivery_tag
        if tag is None or not link.alive:
            return
        message_id = message.header.properties.message_id
        if message_id:
            self._unread.get(queue, {}).pop(message_id, None)
        if self._lag.get(queue):
            self._lag[queue] -= 1
        try:
            jobs = _decode(message)
        except UndecodableJob as exc:
            self.undecodable += 1
            log.error("queue.undecodable", extra={"queue": queue, "error": str(exc)})
            # To the dead-letter exchange. Should the link be lost meanwhile, the broker hands
            # the message out again and it comes back here: nothing else to do now.
            with contextlib.suppress(QueueError):
                await link.reject(tag, requeue=False)
            return
        redelivered = getattr(message.delivery, "redelivered", False)
        received = _Received(link, tag, queue, len(jobs))
        if redelivered and self._on_redelivered is not None:
            self._on_redelivered(len(jobs))
        for job in jobs:
            if redelivered:
                extra = {"queue": queue, "delivery_id": job.delivery.id}
                log.info("queue.redelivered", extra=extra)
            self._handout.receive(received, job)
        self._wake()
        self._sizes.learn(len(jobs))

    async def _release_link_if_done(self) -> None:
        """Close the link once closed and every job handed out is acked."""
        done = self._handout.all_acked and not self._acks.busy
        if self._closed and not self._taking_back and done and self._link is not None:
            link, self._link = self._link, None
            await link.close()

    # -- closing ----------------------------------------------------------------------------
    async def _settle_ready(self, link: Link, returned: list[Job]) -> None:
        """Ack the jobs received and never handed out: the engine releases them in the store."""
        ready = self._handout.take_ready()  # all received on ``link``: others were forgotten
        done = []
        for received, job in ready:
            received.left -= 1
            if received.left == 0:
                done.append(received.tag)  # the others go with their last job's ack
            returned.append(job)
        await link.ack(done)

    async def _take_back(self, link: Link, returned: list[Job]) -> None:
        """Take back, from the head of each queue, the jobs this queue put that no one read."""
        for name, unread in self._unread.items():
            while unread:
                message = await link.take(name)
                if message is None or message.delivery_tag is None:
                    break
                message_id = message.header.properties.message_id
                part = unread.pop(message_id, None) if message_id else None
                if part is None:
                    # Another publisher's: back to the head of its queue, ours stay behind it.
                    await link.reject(message.delivery_tag, requeue=True)
                    break
                await link.ack([message.delivery_tag])
                returned += part

    # -- depth ------------------------------------------------------------------------------
    async def _count(self, link: Link, names: Iterable[str]) -> None:
        for name in names:
            ready = await link.count(name)
            self._lag[name] = ready
            # Only the last ``ready`` messages put into a queue can still be in it: older ones
            # this queue put were read by someone, and are no longer its to take back.
            unread = self._unread.get(name)
            if unread and len(unread) > ready:
                for message_id in list(unread)[: len(unread) - ready]:
                    del unread[message_id]

    async def _keep_counting(self, link: Link, names: Sequence[str]) -> None:
        """While ``link`` consumes: count its queues every ``refresh_s``."""
        while not self._closed:
            await asyncio.wait([link.lost], timeout=self._refresh_s)
            if link.lost.done() or self._closed:
                return
            try:
                await self._count(link, names)
            except QueueError:
                return  # the link is lost: the getters hear of it

    # -- waking getters ---------------------------------------------------------------------
    def _wakeup(self) -> asyncio.Future[None]:
        if self._signal is None or self._signal.done():
            self._signal = asyncio.get_running_loop().create_future()
        return self._signal

    def _wake(self) -> None:
        if self._signal is not None and not self._signal.done():
            self._signal.set_result(None)
