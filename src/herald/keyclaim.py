"""The idempotency key an API request holds while its route does the work, as the stores see it.

A request with an ``Idempotency-Key`` claims the key before it does anything (the API,
:mod:`herald.api.idempotency`), then runs its route while :func:`holding` that claim. Every
write a store makes meanwhile, for that request, first marks the key ``committed`` in the
write's own transaction, and only if the claim still holds (the key's token is the claim's);
otherwise it raises :class:`~herald.errors.IdempotencyClaimLost` and writes nothing. So:

- a request whose claim was taken over (it outlived its lock, and a retry took the key) can
  no longer commit anything: the retry does the work, once;
- a key whose work committed says so, whatever happens to the request afterwards (a failure,
  a crash, a lost answer): it is never taken over nor given up, and a retry is never done
  again.

Reads do not mark (a request that only read, then was refused, changed nothing), nor do
writes that changed nothing (the stores roll their mark back with them).

The claim travels as a context variable, so the stores' signatures stay as they are. A task
keeps the context it was created in: one started while a request held a claim (a background
task started lazily, say) would carry it long after the request ended, so the claim is its
holding task's only (:func:`current` is None in any other task), and the API clears it before
it settles the key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["KeyClaim", "current", "hold", "holding"]


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """A workspace's idempotency key, claimed with ``token`` by the request being answered."""

    workspace_id: str
    key: str
    token: str


_held: ContextVar[tuple[KeyClaim, asyncio.Task[object]] | None] = ContextVar(
    "herald_key_claim", default=None
)


def hold(claim: KeyClaim) -> None:
    """Make ``claim`` the running task's, until the end of the enclosing :func:`holding`."""
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("a key claim is held by a task")
    _held.set((claim, task))


@contextmanager
def holding(claim: KeyClaim | None = None) -> Iterator[None]:
    """Within the block, the running task's writes are made under ``claim`` (or under the
    claim given to :func:`hold` within it); none before nor after."""
    reset = _held.set(None)
    try:
        if claim is not None:
            hold(claim)
        yield
    finally:
        _held.reset(reset)


def current() -> KeyClaim | None:
    """The claim the running task's writes are made under, if any."""
    held = _held.get()
    if held is None:
        return None
    claim, task = held
    try:
        running = asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return None
    return claim if running is task else None
