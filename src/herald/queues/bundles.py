"""Several jobs a message: how a broker queue splits its jobs, and counts them back.

A message costs the publisher, the broker and the consumer far more than a job in it (a Redis
command and its reply, or AMQP frames, a confirm and an ack, each a socket write on the way),
so both broker queues put up to ``most`` jobs of one platform and region in one message
(:func:`bundles`). A message is acked with its last job; until then it is held whole.

Brokers count messages, while a worker's window and the backlog an autoscaler reads are in
jobs. :class:`Sizes` follows the size of the messages a queue puts and receives, and turns
one figure into the other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from herald.domain import Job

__all__ = ["Sizes", "bundles"]


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


class Sizes:
    """Jobs per message, as put and received lately: as many as a message may hold (``most``)
    until one is seen, so a worker never starts by taking more than its jobs' worth."""

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

    def messages_for(self, jobs: int) -> int:
        """How many messages hold about ``jobs`` jobs (at least one)."""
        return max(1, math.ceil(jobs / self.mean))

    def waiting(self, ready: int, mine: Iterable[Sequence[Job]]) -> int:
        """Jobs in the ``ready`` messages of a queue, ``mine`` being the messages this queue
        put there that may still be among them, oldest first: the newest ``ready`` of those
        by their size, any others by the mean size."""
        if ready <= 0:
            return 0
        own = list(mine)[-ready:]
        return sum(len(part) for part in own) + round((ready - len(own)) * self.mean)
