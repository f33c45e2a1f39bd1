"""The in-memory store's idempotency keys, and the request claims its writes mark (see
:mod:`herald.stores.memory`).

Every write of the memory store that the API makes (its catalogue, its webhooks, its imports)
calls :meth:`MemoryKeys._mark_claim` once its checks passed and right before it changes
anything, with no ``await`` in between: one step on the event loop, as the SQL stores' mark
is one statement in the write's own transaction (:mod:`herald.keyclaim`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from herald import keyclaim
from herald.stores.contract import (
    KeyRecord,
    claim_lost,
    judge_key,
    key_claimable,
    new_claim_token,
)
from herald.types import KeyClaimed, KeyStart, StoredResponse

__all__ = ["MemoryKeys"]


class MemoryKeys:
    def _init_keys(self) -> None:
        self._idempotency: dict[tuple[str, str], KeyRecord] = {}

    # -- a request's key claim, marked by the writes ------------------------------------------
    def _held_claim(self) -> keyclaim.KeyClaim | None:
        """The running request's key claim, if any; IdempotencyClaimLost if the key is no
        longer its own (where the SQL stores' mark finds no row)."""
        claim = keyclaim.current()
        if claim is None:
            return None
        if self._claimed(claim.workspace_id, claim.key, claim.token) is None:
            raise claim_lost()
        return claim

    def _mark_claim(self) -> None:
        """Mark the running request's claimed key committed: called by a write once its checks
        passed, right before it changes anything."""
        claim = self._held_claim()
        if claim is not None:
            held = (claim.workspace_id, claim.key)
            self._idempotency[held] = replace(self._idempotency[held], state="committed")

    # -- the keys -----------------------------------------------------------------------------
    async def begin_idempotent(
        self,
        workspace_id: str,
        key: str,
        fingerprint: str,
        *,
        now: datetime,
        locked_until: datetime,
        expires_at: datetime,
    ) -> KeyStart:
        # No await between the read and the write: one event loop, so the claim is atomic.
        record = self._idempotency.get((workspace_id, key))
        if record is not None and not key_claimable(record, fingerprint, now):
            return judge_key(record, fingerprint, now)
        token = new_claim_token()
        self._idempotency[workspace_id, key] = KeyRecord(
            fingerprint, token, now, locked_until, expires_at
        )
        return KeyClaimed(token)

    def _claimed(self, workspace_id: str, key: str, token: str) -> KeyRecord | None:
        record = self._idempotency.get((workspace_id, key))
        if record is None or record.token != token or record.state == "done":
            return None
        return record

    async def finish_idempotent(
        self, workspace_id: str, key: str, token: str, response: StoredResponse
    ) -> bool:
        record = self._claimed(workspace_id, key, token)
        if record is None:
            return False
        self._idempotency[workspace_id, key] = replace(record, state="done", response=response)
        return True

    async def release_idempotent(self, workspace_id: str, key: str, token: str) -> bool:
        record = self._claimed(workspace_id, key, token)
        if record is None:
            return False
        if record.state == "committed":  # its work is done: kept, its lock ended
            self._idempotency[workspace_id, key] = replace(record, locked_until=record.created_at)
            return False
        del self._idempotency[workspace_id, key]
        return True

    async def purge_idempotency(self, before: datetime, *, limit: int) -> int:
        expired = sorted(
            (r.expires_at, k) for k, r in self._idempotency.items() if r.expires_at <= before
        )[:limit]
        for _, k in expired:
            del self._idempotency[k]
        return len(expired)
