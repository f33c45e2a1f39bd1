"""The AMQP side of the RabbitMQ queue: the topology, one connection and its two channels.

:class:`Topology` names and shapes what the queue declares. :class:`Link` is one connection to
the broker with a publishing channel in confirm mode and a consuming channel with its prefetch
(QoS), and the translation of aio-pika's and aiormq's errors into Herald's, at this boundary:

- the broker cannot be reached, the connection or a channel is gone, the broker does not answer
  within ``timeout_s`` -> :class:`~herald.errors.QueueUnavailable`, and the link is *lost*;
- the broker refused a command (a queue declared with other arguments, a message nacked or
  unroutable) -> :class:`~herald.errors.QueueError`; the broker closes a channel on such a
  refusal, so the link is lost too.

A lost link stays lost (:attr:`Link.lost` is done) and is closed: the queue opens a new one on
its next call, which is how it works again once the broker is back. A delivery received on a
lost link can be neither acked nor rejected any more; the broker puts it back in its queue for
another consumer, which is harmless (see :mod:`herald.queues.rabbitmq`).

Publishing goes through aiormq's channel directly too, not aio-pika's ``Exchange.publish``:
aio-pika builds a message object per message and has aiormq wait for each message's frames to
be written before the next one is queued (every publish of a batch waiting its turn at the
connection's writer); aiormq alone queues them all at once (``wait=False``) and still returns
each one's publisher confirm.

Consuming goes through aiormq's channel directly, not aio-pika's ``Queue.consume``: aiormq runs
the callback of each delivery in a task of its own, created in the order the deliveries arrive,
so the callback has run for every delivery received before the answer to a ``basic.cancel``.
aio-pika adds a second task per delivery, which would lose that order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.abc import DeliveredMessage
from pamqp import commands as spec

from herald.domain import Platform
from herald.errors import QueueError, QueueUnavailable

__all__ = ["Delivered", "Link", "Outgoing", "Topology", "closed_behind"]

T = TypeVar("T")
Delivered = DeliveredMessage
OnDelivery = Callable[[DeliveredMessage], Coroutine[Any, Any, None]]
Outgoing = tuple[str, bytes, spec.Basic.Properties]  # a message: routing key, body, properties

# What a lost connection raises, depending on when it is noticed: aiormq's connection errors
# (which are ConnectionErrors, hence OSErrors), a channel used after it closed, a timeout.
_LOST = (OSError, aiormq.exceptions.ChannelInvalidStateError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Topology:
    """The broker objects of one queue prefix.

    Jobs are published to one durable direct exchange (``{prefix}``) with routing key
    ``{platform}.{region}``; each quorum queue ``{prefix}.{platform}.{region}`` is bound to it
    with its key. A direct exchange rather than the default one: messages are addressed by
    what they are (platform, region) rather than by a queue's name, so an operator can bind
    another queue to a key (an audit tap, a move to another cluster) without touching Herald.

    Each queue is a quorum queue (replicated, durable, and it counts deliveries): a message
    redelivered ``delivery_limit`` times (its consumers died or rejected it) is dead-lettered
    to the fanout exchange ``{prefix}.dead`` and its queue ``{prefix}.dead`` (a classic
    durable queue: it only keeps what an operator looks at) instead of looping for ever.
    """

    prefix: str
    delivery_limit: int

    @property
    def exchange(self) -> str:
        return self.prefix

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead"

    @staticmethod
    def routing_key(platform: Platform, region: str) -> str:
        return f"{platform.value}.{region}"

    def queue(self, platform: Platform, region: str) -> str:
        return f"{self.prefix}.{self.routing_key(platform, region)}"

    def arguments(self) -> dict[str, Any]:
        """Every declaration of a job queue must carry the same ones (the broker refuses a
        redeclaration that differs)."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": self.dead_exchange,
        }


class Link:
    """One connection to the broker, as the queue uses it; made by :meth:`open`."""

    def __init__(
        self,
        connection: AbstractConnection,
        *,
        owned: bool,
        topology: Topology,
        timeout_s: float,
    ) -> None:
        self._connection = connection
        self._owned = owned
        self._topology = topology
        self._timeout_s = timeout_s
        self._publisher: AbstractChannel | None = None
        self._publishing: aiormq.Channel | None = None  # the publishing one, underneath
        self._consumer: AbstractChannel | None = None
        self._amqp: aiormq.abc.AbstractChannel | None = None  # the consuming one, underneath
        self._declared: set[str] = set()  # job queues declared and bound on this link
        self._consumer_tags: list[str] = []
        # Delivery tags received on the consuming channel and neither acked nor rejected yet:
        # what an ack with ``multiple`` may cover, and what it must not.
        self._unacked: set[int] = set()
        # Ack and reject frames are worked out and queued one call at a time, in order: a
        # ``multiple`` ack queued before an earlier single one would make it an unknown tag.
        self._settling = asyncio.Lock()
        #: Done once the link is lost: its result says why.
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(
        cls,
        broker: str | AbstractConnection,
        *,
        topology: Topology,
        prefetch: int,
        connect_timeout_s: float,
        timeout_s: float,
    ) -> Link:
        """Connect (to a URL: the link owns the connection) or use the caller's connection,
        open both channels and declare the exchanges and the dead-letter queue."""
        link: Link | None = None
        try:
            connection: AbstractConnection
            if isinstance(broker, str):
                connection = await asyncio.wait_for(
                    aio_pika.connect(broker, timeout=connect_timeout_s), connect_timeout_s + 1.0
                )
            else:
                connection = broker
            link = cls(
                connection, owned=isinstance(broker, str), topology=topology, timeout_s=timeout_s
            )
            await link._run(link._start(prefetch))
            return link
        except _LOST as exc:
            if link is not None:
                await link.close()
            raise QueueUnavailable(f"RabbitMQ cannot be reached: {exc!r}") from exc
        except aiormq.exceptions.AMQPError as exc:
            if link is not None:
                await link.close()
            raise QueueUnavailable(f"RabbitMQ refused the connection: {exc!r}") from exc
        except BaseException:
            if link is not None:
                await link.close()
            raise

    async def _start(self, prefetch: int) -> None:
        self._connection.close_callbacks.add(self._on_close)
        self._publisher = self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await self._publisher.initialize(timeout=self._timeout_s)
        self._publisher.close_callbacks.add(self._on_close)
        self._consumer = self._connection.channel(publisher_confirms=False)
        await self._consumer.initialize(timeout=self._timeout_s)
        self._consumer.close_callbacks.add(self._on_close)
        await self._consumer.set_qos(prefetch_count=prefetch)
        self._amqp = await self._consumer.get_underlay_channel()
        t = self._topology
        await self._publisher.declare_exchange(
            t.exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        publishing = await self._publisher.get_underlay_channel()
        if not isinstance(publishing, aiormq.Channel):  # its publish's ``wait`` is aiormq's own
            raise QueueError(f"an AMQP channel aiormq did not make: {publishing!r}")
        self._publishing = publishing
        dead = await self._publisher.declare_exchange(
            t.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        dead_queue = await self._publisher.declare_queue(t.dead_queue, durable=True)
        await dead_queue.bind(dead, routing_key="")

    def _on_close(self, _sender: object, exc: BaseException | None = None) -> None:
        self._lose(f"the connection to RabbitMQ closed: {exc!r}")

    def _lose(self, why: str) -> None:
        if not self.lost.done():
            self.lost.set_result(why)

    @property
    def alive(self) -> bool:
        return not self.lost.done()

    # -- calls ------------------------------------------------------------------------------
    async def _run(self, call: Awaitable[T]) -> T:
        """Await a broker call within ``timeout_s``, translating its errors into Herald's;
        any error loses the link (a refused command closes its channel)."""
        if self.lost.done():
            if asyncio.iscoroutine(call):
                call.close()  # never to be awaited: closed, so no warning calls it forgotten
            raise QueueUnavailable(self.lost.result())
        try:
            return await asyncio.wait_for(call, self._timeout_s)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # aiormq cancels the calls in flight on a connection that closes.
            self._lose("the connection to RabbitMQ closed during a call")
            raise QueueUnavailable(self.lost.result()) from None
        except _LOST as exc:
            self._lose(f"RabbitMQ cannot be reached: {exc!r}")
            raise QueueUnavailable(f"RabbitMQ cannot be reached: {exc!r}") from exc
        except aiormq.exceptions.AMQPConnectionError as exc:
            self._lose(f"the connection to RabbitMQ closed: {exc!r}")
            raise QueueUnavailable(f"the connection to RabbitMQ closed: {exc!r}") from exc
        except aiormq.exceptions.AMQPError as exc:
            self._lose(f"RabbitMQ refused a command: {exc!r}")
            raise QueueError(f"RabbitMQ refused a queue command: {exc!r}") from exc

    def _channel(self) -> aiormq.abc.AbstractChannel:
        if self._amqp is None:
            raise QueueError("the link is not open")
        return self._amqp

    # -- topology ---------------------------------------------------------------------------
    async def declare(self, queues: Iterable[tuple[Platform, str]]) -> None:
        """Declare and bind the job queues of ``queues`` (platform, region) not yet declared on
        this link: idempotent on the broker, so publishers and consumers both do it."""
        t = self._topology
        for platform, region in queues:
            name = t.queue(platform, region)
            if name in self._declared:
                continue
            await self._run(
                self._channel().queue_declare(name, durable=True, arguments=t.arguments())
            )
            await self._run(
                self._channel().queue_bind(name, t.exchange, t.routing_key(platform, region))
            )
            self._declared.add(name)

    async def count(self, queue: str) -> int:
        """Messages ready in ``queue`` (not counting those delivered and not yet acked). Asked
        on the consuming channel, so a delivery that arrives after the answer was counted in
        it (the queue subtracts such deliveries from the figure)."""
        ok = await self._run(
            self._channel().queue_declare(queue, durable=True, arguments=self._topology.arguments())
        )
        return int(ok.message_count or 0)

    # -- publishing -------------------------------------------------------------------------
    async def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish ``messages`` to the jobs' exchange at once and return when the broker
        confirmed every one: a nack or an unroutable message raises :class:`QueueError`."""
        channel = self._publishing
        if channel is None:
            raise QueueError("the link is not open")
        exchange = self._topology.exchange
        sent = [
            channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=key,
                properties=properties,
                mandatory=True,
                wait=False,  # queued, not written: the confirm is what is awaited
            )
            for key, body, properties in messages
        ]
        confirms = await self._run(asyncio.gather(*sent))
        if any(not isinstance(c, spec.Basic.Ack) for c in confirms):
            raise QueueError("RabbitMQ did not take every job put (a nack)")

    # -- consuming --------------------------------------------------------------------------
    @property
    def consuming(self) -> bool:
        return bool(self._consumer_tags)

    async def consume(self, queue: str, on_delivery: OnDelivery) -> None:
        async def delivered(message: DeliveredMessage) -> None:
            if message.delivery_tag is not None:
                self._unacked.add(message.delivery_tag)
            await on_delivery(message)

        ok = await self._run(self._channel().basic_consume(queue, delivered, no_ack=False))
        if ok.consumer_tag is not None:
            self._consumer_tags.append(ok.consumer_tag)

    async def stop_consuming(self) -> None:
        """Cancel every consumer; on return, every delivery received was handed to its
        callback, and no more arrive."""
        tags, self._consumer_tags = self._consumer_tags, []
        for tag in tags:
            await self._run(self._channel().basic_cancel(tag))

    async def take(self, queue: str) -> DeliveredMessage | None:
        """The message at the head of ``queue`` (``basic.get``, to ack), or None if empty."""
        got = await self._run(self._channel().basic_get(queue, no_ack=False))
        if not isinstance(got.delivery, spec.Basic.GetOk):
            return None
        if got.delivery_tag is not None:
            self._unacked.add(got.delivery_tag)
        return got

    async def ack(self, tags: Iterable[int]) -> None:
        """Ack ``tags`` in as few frames as the channel allows: every one below the lowest tag
        still unacked in one frame (``multiple``), the others one by one. Tags are the
        channel's, in the order it delivered; a tag acked twice would close the channel, so
        one not unacked any more is left out."""
        async with self._settling:
            wanted = sorted(self._unacked.intersection(tags))
            if not wanted:
                return
            self._unacked.difference_update(wanted)
            floor = min(self._unacked, default=wanted[-1] + 1)
            below = [tag for tag in wanted if tag < floor]
            frames = [(below[-1], True)] if below else []
            frames += [(tag, False) for tag in wanted[len(below) :]]
            await self._run(self._send_acks(frames))

    async def _send_acks(self, frames: list[tuple[int, bool]]) -> None:
        channel = self._channel()
        for index, (tag, multiple) in enumerate(frames):
            # Written in order: waiting for the last one to be written waits for them all.
            await channel.basic_ack(tag, multiple=multiple, wait=index == len(frames) - 1)

    async def reject(self, tag: int, *, requeue: bool) -> None:
        async with self._settling:
            self._unacked.discard(tag)
            await self._run(self._channel().basic_reject(tag, requeue=requeue))

    # -- closing ----------------------------------------------------------------------------
    async def close(self) -> None:
        """Close the channels (and the connection, if the link owns it). Deliveries not acked
        go back to their queues, by the broker."""
        self._lose("the link to RabbitMQ was closed")
        for channel in (self._consumer, self._publisher):
            if channel is not None and not channel.is_closed:
                with contextlib.suppress(*_LOST, aiormq.exceptions.AMQPError):
                    await asyncio.wait_for(channel.close(), self._timeout_s)
        if self._owned and not self._connection.is_closed:
            with contextlib.suppress(*_LOST, aiormq.exceptions.AMQPError):
                await asyncio.wait_for(self._connection.close(), self._timeout_s)
        await closed_behind(self._timeout_s)


async def closed_behind(timeout_s: float) -> None:
    """Wait for what aio-pika and aiormq finish in tasks of their own once a channel or a
    connection has closed: each channel's close callback and the connection's writer. Nothing
    awaits them (those of a channel closed with its connection least of all); still running
    when the event loop ends, they are destroyed pending, a warning at every worker's exit."""
    # One look is not enough: a connection's close callback closes its channels, whose own
    # callbacks start as new tasks once it runs; and a callback scheduled with call_soon has
    # no task until the loop turns. So look again after every wait, until none is left.
    me = asyncio.current_task()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        await asyncio.sleep(0)
        behind = [
            task
            for task in asyncio.all_tasks()
            if task is not me and _closing_task(getattr(task.get_coro(), "__qualname__", ""))
        ]
        left = deadline - loop.time()
        if not behind or left <= 0:
            return
        await asyncio.wait(behind, timeout=left)


def _closing_task(name: str) -> bool:
    return name.startswith("OneShotCallback.") or name.endswith(".close_writer_task")
