"""Group commit: many changes, one transaction; one refused change does not sink the rest."""

from __future__ import annotations

import asyncio

import pytest

from herald.domain import Transition
from herald.engine.writer import TransitionWriter
from herald.errors import StoreError
from herald.states import DeliveryState
from herald.stores.memory import MemoryStore
from herald.testing import channel, new_post

S = DeliveryState


class CountingStore(MemoryStore):
    """Counts transactions; refuses any batch holding a change whose error is 'poison'."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0

    async def apply(self, transitions):
        self.transactions += 1
        if any(t.error == "poison" for t in transitions):
            raise StoreError("the database refused a value")
        return await super().apply(transitions)


async def scheduled(store, n):
    ch = channel()
    await store.add_channels([ch])
    return await store.add_posts([new_post([ch]) for _ in range(n)])


async def test_changes_written_together_share_a_transaction():
    store = CountingStore()
    deliveries = await scheduled(store, 50)
    writer = TransitionWriter(store)
    running = asyncio.create_task(writer.run())
    results = await asyncio.gather(
        *(writer.write(Transition(d.id, S.CANCELLED)) for d in deliveries)
    )
    await writer.close()
    await running
    assert results == [True] * 50
    assert store.transactions < 5  # gathered while the first one was being written


async def test_a_refused_change_fails_alone():
    store = CountingStore()
    good, bad = await scheduled(store, 2)
    writer = TransitionWriter(store)  # a refused write is not tried again
    running = asyncio.create_task(writer.run())
    ok = writer.write(Transition(good.id, S.CANCELLED))
    poisoned = writer.write(Transition(bad.id, S.CANCELLED, error="poison"))
    results = await asyncio.gather(ok, poisoned, return_exceptions=True)
    await writer.close()
    await running
    assert results[0] is True
    assert isinstance(results[1], StoreError)
    assert (await store.get_delivery(good.id)).state is S.CANCELLED
    assert (await store.get_delivery(bad.id)).state is S.SCHEDULED


@pytest.mark.parametrize("raw", ["boom\x00", "half \ud800 a pair", "x" * 5000])
def test_errors_are_described_as_storable_text(raw):
    from herald.engine.policy import describe

    text = describe(RuntimeError(raw))
    text.encode("utf-8")
    assert "\x00" not in text
    assert len(text) <= 2000
