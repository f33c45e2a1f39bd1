"""Waiting for a condition in a test: checked again and again, up to a deadline.

Prefer a signal when the code under test offers one (:meth:`FakePlatform.wait_until` wakes at
every request the platform receives); this is for conditions nothing announces, such as a row
reaching a state in a store another task writes to.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

__all__ = ["eventually"]

#: A condition to wait for: a plain or an async function of no arguments.
Condition = Callable[[], bool | Awaitable[bool]]


async def eventually(
    condition: Condition, *, within_s: float = 10.0, every_s: float = 0.01
) -> None:
    """Return once ``condition()`` is true; raise :class:`TimeoutError` after ``within_s``.

    The condition is checked at once, then every ``every_s`` seconds of the running loop's
    clock (so a test loop on virtual time waits virtual seconds).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"condition not met within {within_s} s")
        await asyncio.sleep(every_s)
