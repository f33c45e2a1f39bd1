"""The in-process concurrency caps: exact, for one engine process (the embedded deployment).

The same leases as the shared caps (:mod:`.redis`), so both pass one contract suite: a
permit's slots free when it is released, or when its lease ends unrenewed.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

from herald.types import CapClaim, CapsFull, Permit

__all__ = ["MemoryCaps", "permit_id", "slot_wait_s"]


def permit_id(holder: str) -> str:
    """A permit's id: its holder's, and a token of its own."""
    return f"{holder}:{secrets.token_hex(8)}"


def slot_wait_s(expiries: Sequence[float], limit: int, now: float) -> float:
    """How long until a cap holding leases ending at ``expiries`` has a free slot, if no
    holder releases one: the leases beyond ``limit - 1`` must all have ended."""
    ordered = sorted(expiries)
    return max(0.0, ordered[len(ordered) - limit] - now)


class MemoryCaps:
    """Implements :class:`herald.types.ConcurrencyCaps` in this process's memory."""

    def __init__(self, *, lease_s: float = 10.0) -> None:
        self.lease_s = lease_s
        self._held: dict[str, dict[str, float]] = {}  # key -> permit id -> lease end

    def _live(self, key: str, now: float) -> dict[str, float]:
        slots = self._held.setdefault(key, {})
        for permit, until in list(slots.items()):
            if until <= now:
                del slots[permit]  # its holder stopped renewing: died, or hung
        return slots

    async def acquire(
        self, claims: Sequence[CapClaim], holder: str, now: float
    ) -> Permit | CapsFull:
        full: list[str] = []
        wait_s = 0.0
        for claim in claims:
            slots = self._live(claim.key, now)
            if len(slots) >= claim.limit:
                full.append(claim.key)
                wait_s = max(wait_s, slot_wait_s(list(slots.values()), claim.limit, now))
        if full:
            return CapsFull(wait_s if math.isfinite(wait_s) else self.lease_s, tuple(full))
        permit = Permit(permit_id(holder), tuple(dict.fromkeys(c.key for c in claims)))
        for key in permit.keys:
            self._held[key][permit.id] = now + self.lease_s
        return permit

    async def release(self, permits: Sequence[Permit]) -> None:
        for permit in permits:
            for key in permit.keys:
                slots = self._held.get(key)
                if slots is not None:
                    slots.pop(permit.id, None)
                    if not slots:
                        del self._held[key]

    async def renew(self, permits: Sequence[Permit], now: float) -> None:
        for permit in permits:
            for key in permit.keys:
                self._held.setdefault(key, {})[permit.id] = now + self.lease_s
