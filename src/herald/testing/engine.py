"""An engine with nothing outside the process: in-memory store, queue and limiter."""

from __future__ import annotations

from collections.abc import Mapping

from herald.config import Settings
from herald.domain import Platform
from herald.engine import Engine
from herald.limits.rules import LimitRule
from herald.stores.memory import MemoryStore
from herald.testing.credentials import StaticCredentials
from herald.testing.virtual_time import running_clock
from herald.types import Clock, Connector, CredentialResolver, EngineStore

__all__ = ["memory_engine"]


def memory_engine(
    connectors: Mapping[Platform, Connector],
    *,
    settings: Settings | None = None,
    store: EngineStore | None = None,
    credentials: CredentialResolver | None = None,
    rules: Mapping[Platform, tuple[LimitRule, ...]] | None = None,
    clock: Clock | None = None,
) -> Engine:
    """An engine publishing through ``connectors`` from ``store`` (a new
    :class:`~herald.stores.memory.MemoryStore` by default, reachable as ``engine.store``).

    No platform limits apply unless ``rules`` gives them (the fakes model none); every channel
    gets a fixed token unless ``credentials`` says otherwise; the clock is the one that agrees
    with the running loop (virtual on a :class:`~herald.testing.VirtualTimeLoop`) unless
    ``clock`` says otherwise. The engine has the store to itself, so ``engine.run()`` first
    recovers every claim a previous run left.
    """
    return Engine(
        settings or Settings(),
        store or MemoryStore(),
        connectors,
        credentials=credentials or StaticCredentials(),
        rules=rules if rules is not None else {platform: () for platform in connectors},
        exclusive=True,
        clock=clock or running_clock(),
    )
