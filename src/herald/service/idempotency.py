"""Idempotency keys: a write retried with the same key is done once, and answered as it was.

A client names one write with a key of its choosing (the ``Idempotency-Key`` header; the HTTP
side is :mod:`herald.api.idempotency`) and sends the same key with every retry of it. Keys
belong to a workspace. The rules, Stripe's:

- The first request with a key claims it in the store before doing anything
  (:meth:`~herald.types.Catalog.begin_idempotent`: one claim per key, whichever API process
  asks), does the work, and leaves its answer under the key (:meth:`IdempotencyKeys.finish`)
  for ``api.idempotency_ttl_s`` from the claim.
- A retry (same key, same request: method, path and body, by fingerprint) within that time
  gets the stored answer and does nothing (:class:`~herald.types.StoredResponse`); while the
  first is still being answered, a 409 with ``Retry-After``
  (:class:`~herald.errors.IdempotencyKeyBusy`). It does not wait: the client is retrying
  already, and a request parked on another's lock would hold a connection for nothing.
- The same key with another request is a 422 (:class:`~herald.errors.IdempotencyKeyReused`).
- Only successes are kept. A refusal (4xx) changed nothing (every write validates before it
  stores, in one transaction), so keeping it would only pin a stale "no" to the key; a
  failure (5xx, an exception, a cancelled request) leaves nothing either. Either way the claim
  is released (:meth:`IdempotencyKeys.release`) and the key can be used again at once.
- A claim whose process died is never released: it holds the key ``api.idempotency_lock_s``,
  then the same request may claim it again.

Answers are kept encrypted with the secret keys (:class:`~herald.service.vault.Vault`): some
hold a secret shown only once (a new API key, a webhook's signing secret). Expired keys are
purged in batches, at most every ``purge_every_s`` per process, by whichever request comes
(:meth:`IdempotencyKeys.purge_if_due`): no process has to poll for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from herald.constants import IDEMPOTENCY_KEY_HEADER
from herald.domain import utcnow
from herald.errors import Conflict, IdempotencyKeyBusy, IdempotencyKeyReused
from herald.service.vault import SecretUnreadable, Vault
from herald.types import Catalog, KeyBusy, KeyClaimed, KeyDone, KeyMismatch, StoredResponse

__all__ = ["Claim", "IdempotencyKeys"]

log = logging.getLogger("herald.idempotency")

#: Seconds a retry of a request still in progress is told to wait: most writes take less.
BUSY_RETRY_AFTER_S = 1


@dataclass(frozen=True, slots=True)
class Claim:
    """A key claimed by the request being answered."""

    workspace_id: str
    key: str
    token: str


class IdempotencyKeys:
    """Claims, answers and forgets a workspace's idempotency keys in ``store``."""

    def __init__(
        self,
        store: Catalog,
        vault: Vault,
        *,
        ttl_s: float,
        lock_s: float,
        clock: Callable[[], datetime] = utcnow,
        purge_every_s: float = 60.0,
        purge_batch: int = 1000,
    ) -> None:
        self._store = store
        self._vault = vault
        self._ttl = timedelta(seconds=ttl_s)
        self._lock = timedelta(seconds=lock_s)
        self._clock = clock
        self._purge_every = timedelta(seconds=purge_every_s)
        self._purge_batch = purge_batch
        self._next_purge: datetime | None = None  # None: at the first request
        self._purging = False

    async def begin(self, workspace_id: str, key: str, fingerprint: str) -> Claim | StoredResponse:
        """Claim ``key`` for the request with ``fingerprint``, or the answer to give instead.

        Raises :class:`~herald.errors.IdempotencyKeyBusy` (the same request is in progress),
        :class:`~herald.errors.IdempotencyKeyReused` (another request used the key) or
        :class:`~herald.errors.Conflict` (its answer can no longer be decrypted)."""
        now = self._clock()
        started = await self._store.begin_idempotent(
            workspace_id,
            key,
            fingerprint,
            now=now,
            locked_until=now + self._lock,
            expires_at=now + self._ttl,
        )
        match started:
            case KeyClaimed(token):
                return Claim(workspace_id, key, token)
            case KeyDone(response):
                return self._opened(response)
            case KeyBusy():
                raise IdempotencyKeyBusy(
                    f"a request with this {IDEMPOTENCY_KEY_HEADER} is in progress: ask again "
                    "after Retry-After for its answer",
                    retry_after_s=BUSY_RETRY_AFTER_S,
                )
            case KeyMismatch():
                raise IdempotencyKeyReused(
                    f"this {IDEMPOTENCY_KEY_HEADER} was used for another request (another "
                    "route or another body): use a new key for a new request",
                    field=IDEMPOTENCY_KEY_HEADER,
                )

    async def finish(self, claim: Claim, response: StoredResponse) -> bool:
        """Keep ``response`` (its body encrypted) as the answer to the claimed key. False when
        the claim was lost: the request outlived its lock and a retry took the key over."""
        sealed = replace(response, body=self._vault.encrypt(response.body))
        kept = await self._store.finish_idempotent(
            claim.workspace_id, claim.key, claim.token, sealed
        )
        if not kept:
            log.warning("idempotency.claim_lost", extra={"workspace_id": claim.workspace_id})
        return kept

    async def release(self, claim: Claim) -> bool:
        """Give the key up: the request failed, and a retry may do the work."""
        return await self._store.release_idempotent(claim.workspace_id, claim.key, claim.token)

    def purge_due(self) -> bool:
        """Whether expired keys should be purged now (see :meth:`purge_if_due`)."""
        if self._purging:
            return False
        return self._next_purge is None or self._clock() >= self._next_purge

    async def purge_if_due(self) -> int:
        """Delete a batch of expired keys if this process has not for ``purge_every_s`` (at
        once again after a full batch); return how many."""
        if not self.purge_due():
            return 0
        now = self._clock()
        self._next_purge = now + self._purge_every  # a store that fails is not asked at once
        self._purging = True
        try:
            purged = await self._store.purge_idempotency(now, limit=self._purge_batch)
        finally:
            self._purging = False
        if purged >= self._purge_batch:
            self._next_purge = now  # more are left: the next request purges again
        if purged:
            log.info("idempotency.purged", extra={"keys": purged})
        return purged

    def _opened(self, stored: StoredResponse) -> StoredResponse:
        try:
            return replace(stored, body=self._vault.decrypt(stored.body))
        except SecretUnreadable:
            # The request was done; only its answer is lost (the secret key it was kept under
            # was dropped): doing it again would do it twice.
            raise Conflict(
                f"the request with this {IDEMPOTENCY_KEY_HEADER} was done, but its answer can "
                "no longer be read: look its result up, and use a new key for a new request",
                field=IDEMPOTENCY_KEY_HEADER,
            ) from None
