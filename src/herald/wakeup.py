"""Waiting on wake-up signals with a computed deadline, never on a fixed polling beat."""

from __future__ import annotations

import asyncio

__all__ = ["wait_first"]


async def wait_first(*events: asyncio.Event, within_s: float | None) -> None:
    """Return when any of ``events`` is set, or after ``within_s`` seconds (None: no limit)."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
