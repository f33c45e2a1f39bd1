"""In-process slot locks: one lock per key while anyone holds or waits for it, none after."""

from __future__ import annotations

import asyncio

from herald.stores.slot_locks import KeyedLocks


async def test_locks_are_dropped_once_nobody_holds_or_waits():
    locks = KeyedLocks()
    order: list[str] = []

    async def use(name: str, keys: list[str]) -> None:
        async with locks.hold(keys):
            order.append(name)
            await asyncio.sleep(0.01)

    first = asyncio.create_task(use("first", ["a", "b"]))
    await asyncio.sleep(0)
    second = asyncio.create_task(use("second", ["b"]))
    await asyncio.sleep(0)
    assert len(locks) == 2  # a and b: b has a holder and a waiter
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert len(locks) == 0
