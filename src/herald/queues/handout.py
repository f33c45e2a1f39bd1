"""What a shared queue received and has not handed out, and handed out and not seen acked.

A queue that carries jobs between processes knows each message by the server's handle for it
(a stream entry, a delivery tag). :class:`Handout` keeps each handle with its job from receipt
to ack: ready jobs in the order received, then taken ones until the engine acks them. A taken
job is known by its claim (delivery id and claim token), which equal jobs share: equal jobs
handed out twice are acked in the order they were handed out. The claim rather than the job:
a job hashes every field of its delivery, channel and content, which was most of what handing
a job out and finishing it cost a worker.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from herald.domain import Job

__all__ = ["Handout"]

H = TypeVar("H")
Claim = tuple[str, str]  # (delivery id, claim token)


def _claim(job: Job) -> Claim:
    return job.delivery.id, job.claim_token


class Handout(Generic[H]):
    def __init__(self) -> None:
        self.ready: deque[tuple[H, Job]] = deque()  # received, not handed out
        self._taken: dict[Claim, deque[H]] = {}  # handed out, not acked

    def receive(self, handle: H, job: Job) -> None:
        self.ready.append((handle, job))

    def hand_out(self) -> Job | None:
        """The first ready job, now taken; None if none is ready."""
        if not self.ready:
            return None
        handle, job = self.ready.popleft()
        self._taken.setdefault(_claim(job), deque()).append(handle)
        return job

    def finish(self, job: Job) -> H | None:
        """The handle of a taken ``job``, no longer taken; None if it was not taken."""
        claim = _claim(job)
        handles = self._taken.get(claim)
        if not handles:
            return None
        handle = handles.popleft()
        if not handles:
            del self._taken[claim]
        return handle

    def take_ready(self, where: Callable[[H], bool] = lambda _: True) -> list[tuple[H, Job]]:
        """Remove the ready jobs whose handle is ``where`` and return them, in order."""
        taken = [item for item in self.ready if where(item[0])]
        self.ready = deque(item for item in self.ready if not where(item[0]))
        return taken

    @property
    def all_acked(self) -> bool:
        return not self._taken
