"""Several jobs a message: how a broker queue splits its jobs, and counts them back.

A message costs the publisher, the broker and the consumer far more than a job in it (a Redis
command and its reply, or AMQP frames, a confirm and an ack, each a socket write on the way),
so both broker queues put up to ``most`` jobs of one platform and region in one message
(:func:`bundles`). A message is acked with its last job; until then it is held whole.

Brokers count messages, while a worker's window and the backlog an autoscaler reads are in
jobs. A worker's window in messages is :func:`messages_within` its jobs: as many messages as
cannot hold more than that many jobs, whatever the size of the messages that come (after a
quiet spell of one-job messages, a burst of full ones must not land on one worker).
:class:`Sizes` follows the size of the messages a queue puts and receives, to count the jobs
in messages it did not put.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from herald.domain import Job

__all__ = ["Sizes", "bundles", "messages_within"]


def bundles(jobs: Sequence[Job], most: int) -> list[Sequence[Job]]:
    """``jobs`` in as few messages of at most ``most`` as they fit, the sizes as even as can
    be (so that workers taking one message each get about as much work)."""
    if not jobs:
        return []
    count = -(-len(jobs) // most)
    size, extra = divmod(len(jobs), count)
    out, start = [], 0
    for index in range(count):
        end = start + size + (index < extra)
        out.append(jobs[start:end])
        start = end
    return out


def messages_within(jobs: int, most: int, sources: int = 1) -> int:
    """How many messages of up to ``most`` jobs to take from each of ``sources`` (streams,
    queues: Redis counts a read, RabbitMQ a window, per source) so that together they never
    hold more than ``jobs``; at least one from each, which may then hold up to ``most``."""
    return max(1, jobs // (most * max(1, sources)))


class Sizes:
    """Jobs per message, as put and received lately: as many as a message may hold (``most``)
    until one is seen."""

    def __init__(self, most: int) -> None:
        if most < 1:
            raise ValueError("a message holds at least one job")
        self.most = most
        self.mean = float(most)
        self._seen = False

    def learn(self, jobs: int) -> None:
        """A message of ``jobs`` was put or received."""
        if self._seen:
            self.mean += (jobs - self.mean) / 4
        else:
            self.mean, self._seen = float(jobs), True

    def waiting(self, ready: int, mine: Iterable[Sequence[Job]]) -> int:
        """Jobs in the ``ready`` messages of a queue, ``mine`` being the messages this queue
        put there that may still be among them, oldest first: the newest ``ready`` of those
        by their size, any others by the mean size."""
        if ready <= 0:
            return 0
        own = list(mine)[-ready:]
        return sum(len(part) for part in own) + round((ready - len(own)) * self.mean)
