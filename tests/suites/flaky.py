"""A store whose calls fail as if its database were away: a double for the outage tests."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from herald.errors import StoreUnavailable


class FlakyStore:
    """Any store, with calls failing with :class:`StoreUnavailable`: the first ``failing[name]``
    calls of each method named there, and every call while :attr:`away` is set.

    ``readiness``, when set, is read at every call (:attr:`observed` keeps what it said), so a
    test can tell whether the engine reported itself not ready while the store was failing.
    """

    def __init__(self, inner: Any, failing: Mapping[str, int] | None = None) -> None:
        self.inner = inner
        self.failing = Counter(failing or {})
        self.calls: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.failed_at: list[float] = []  # loop time of each failure
        self.away = False
        self.readiness: Callable[[], bool] | None = None
        self.observed: list[tuple[str, bool]] = []
        self.observed_away: list[tuple[str, bool]] = []  # what it said while away

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if name.startswith("_") or not callable(found):
            return found

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if self.readiness is not None:
                self.observed.append((name, self.readiness()))
                if self.away and self.failures:
                    self.observed_away.append((name, self.readiness()))
            if self.away or self.failing[name] > 0:
                if not self.away:
                    self.failing[name] -= 1
                self.failures[name] += 1
                self.failed_at.append(asyncio.get_running_loop().time())
                raise StoreUnavailable(f"{name}: the connection to the server was lost")
            return await found(*args, **kwargs)

        return call
