"""An engine starting while its store is away waits for it, as it does once running: a read
it makes at start-up that fails transiently is made again, not the end of the process."""

from __future__ import annotations

import logging

import pytest

from herald.bootstrap import running_engine
from herald.config import Settings
from herald.domain import Channel
from herald.errors import StoreUnavailable
from herald.stores.memory import MemoryStore


class AwayAtFirst(MemoryStore):
    """A store whose channel listing fails ``times`` times before it answers."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.failures_left = times
        self.listings = 0

    async def list_channels(self, *args: object, **kwargs: object) -> list[Channel]:
        self.listings += 1
        if self.failures_left:
            self.failures_left -= 1
            raise StoreUnavailable("the connection was cut")
        return await super().list_channels(*args, **kwargs)  # type: ignore[arg-type]


async def test_a_start_up_read_that_finds_the_store_away_is_made_again(caplog):
    store = AwayAtFirst(times=2)
    await store.open()
    settings = Settings(engine={"store_backoff_base_s": 0.001, "store_backoff_cap_s": 0.01})
    assert not settings.secret_keys  # so the start checks the channels' credentials
    with caplog.at_level(logging.WARNING, logger="herald.engine"):
        async with running_engine(settings, store) as engine:
            failures = engine.metrics.registry.get_sample_value(
                "herald_store_unavailable_total", {"task": "start"}
            )
    assert store.listings == 3
    assert failures == 2
    # Told as any outage of the store is: once away, once back.
    assert [r.msg for r in caplog.records] == ["engine.store_unavailable", "engine.store_back"]


async def test_a_refusal_that_is_not_an_absence_still_stops_the_start():
    class Broken(MemoryStore):
        async def list_channels(self, *args: object, **kwargs: object) -> list[Channel]:
            raise RuntimeError("a bug, not an outage")

    store = Broken()
    await store.open()
    with pytest.raises(RuntimeError, match="a bug"):
        async with running_engine(Settings(), store):
            pass
