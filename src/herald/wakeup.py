"""Waiting on wake-up signals with a computed deadline, never on a fixed polling beat."""

from __future__ import annotations

import asyncio

__all__ = ["wait_first"]


async def wait_first(*events: asyncio.Event, within_s: float | None) -> None:
    """Return when any of ``events`` is set, or after ``within_s`` seconds (None: no limit)."""
    if any(event.is_set() for event in events):
        return
    if not events:
        # asyncio.wait refuses an empty set: with nothing to wake it, only the time counts.
        if within_s is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(within_s)
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
