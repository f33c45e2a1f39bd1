"""What the services that add or move deliveries share: the store, the clock, and the engine's
wake-up.

An engine sleeps until the earliest due time it knows of. When it runs in the same process
(``herald serve``), a service that makes deliveries due (new posts, a reschedule, a retry, a
channel made active again) tells it the earliest new due time through ``notify``, so it claims
them on time. Without one in the process, engines learn of them from the store (PostgreSQL's
``NOTIFY``, or their ``engine.idle_recheck_s``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from herald.domain import utcnow
from herald.types import Notify, Store

__all__ = ["Service"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """A service's store and clock, and the engine's wake-up (None: no engine here)."""

    store: Store
    notify: Notify | None = None
    clock: Callable[[], datetime] = utcnow

    def wake(self, due: Iterable[datetime | None]) -> None:
        """Deliveries became due at ``due``: tell the engine the earliest, if any is known."""
        known = [t for t in due if t is not None]
        if self.notify is not None and known:
            self.notify(min(known))
