"""Idempotency keys: a write retried with the same key is done once, and answered as it was.

A client names one write with a key of its choosing (the ``Idempotency-Key`` header; the HTTP
side is :mod:`herald.api.idempotency`) and sends the same key with every retry of it. Keys
belong to a workspace. The rules, Stripe's:

- The first request with a key claims it in the store before doing anything
  (:meth:`~herald.types.Catalog.begin_idempotent`: one claim per key, whichever API process
  asks), does the work while holding the claim (:mod:`herald.keyclaim`: every write marks the
  key ``committed`` in its own transaction, and only while the key is still the claim's), and
  leaves its answer under the key (:meth:`IdempotencyKeys.finish`) for
  ``api.idempotency_ttl_s`` from the claim.
- A retry (same key, same request: method, path and body, by fingerprint) within that time
  gets the stored answer and does nothing (:class:`~herald.types.StoredResponse`); while the
  first is still being answered, a 409 with ``Retry-After``
  (:class:`~herald.errors.IdempotencyKeyBusy`). It does not wait: the client is retrying
  already, and a request parked on another's lock would hold a connection for nothing.
- The same key with another request is a 422 (:class:`~herald.errors.IdempotencyKeyReused`).
- Only successes are kept as answers. A request that ends otherwise releases its claim
  (:meth:`IdempotencyKeys.release`): if nothing of its work committed (a refusal, 4xx,
  changed nothing: every write validates before it stores, in one transaction; a failure
  before its write), the key is free again at once, and keeping the "no" would only pin it to
  the key. If its work committed (it failed afterwards, while reading its answer back, say),
  the key stays ``committed`` and a retry is told so (a 409,
  :class:`~herald.errors.IdempotencyAnswerLost`): never done twice.
- A claim whose process died is never released: it holds the key ``api.idempotency_lock_s``.
  Then the same request may take it over if nothing of the first one's work committed: the
  first can no longer commit anything (its writes need the claim's token), so a request that
  was only slow cannot do the work a second time either. A committed key is never taken over.

Answers are kept encrypted with the secret keys (:class:`~herald.service.vault.Vault`): some
hold a secret shown only once (a new API key, a webhook's signing secret). Expired keys are
purged in batches, at most every ``purge_every_s`` per process, by whichever request comes
(:meth:`IdempotencyKeys.purge_if_due`): no process has to poll for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from herald.constants import IDEMPOTENCY_KEY_HEADER
from herald.domain import utcnow
from herald.errors import IdempotencyAnswerLost, IdempotencyKeyBusy, IdempotencyKeyReused
from herald.keyclaim import KeyClaim
from herald.service.vault import SecretUnreadable, Vault
from herald.types import (
    Catalog,
    KeyBusy,
    KeyClaimed,
    KeyDone,
    KeyMismatch,
    KeyUnanswered,
    StoredResponse,
)

__all__ = ["Claim", "IdempotencyKeys"]

log = logging.getLogger("herald.idempotency")

#: Seconds a retry of a request still in progress is told to wait: most writes take less.
BUSY_RETRY_AFTER_S = 1

#: A key claimed by the request being answered.
Claim = KeyClaim


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
        :class:`~herald.errors.IdempotencyAnswerLost` (the same request was done, and its
        answer was not kept, or can no longer be decrypted)."""
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
            case KeyUnanswered():
                raise _answer_lost("but its answer was not kept (it failed afterwards)")
            case KeyMismatch():
                raise IdempotencyKeyReused(
                    f"this {IDEMPOTENCY_KEY_HEADER} was used for another request (another "
                    "route or another body): use a new key for a new request",
                    field=IDEMPOTENCY_KEY_HEADER,
                )

    async def finish(self, claim: Claim, response: StoredResponse) -> bool:
        """Keep ``response`` (its body encrypted) as the answer to the claimed key. False when
        the claim was lost (the request, which wrote nothing, outlived its lock and a retry
        took the key over) or the key is gone (erased with its workspace)."""
        sealed = replace(response, body=self._vault.encrypt(response.body))
        kept = await self._store.finish_idempotent(
            claim.workspace_id, claim.key, claim.token, sealed
        )
        if not kept:
            log.warning("idempotency.claim_lost", extra={"workspace_id": claim.workspace_id})
        return kept

    async def release(self, claim: Claim) -> bool:
        """The request ended without an answer to keep: True if the key is free again (none of
        its work committed), False if it stays committed (a retry is told the work was done)."""
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
            raise _answer_lost("but its answer can no longer be read") from None


def _answer_lost(why: str) -> IdempotencyAnswerLost:
    return IdempotencyAnswerLost(
        f"the request with this {IDEMPOTENCY_KEY_HEADER} was carried out, {why}: read the "
        "resource to see the result, and use a new key for a new request",
        field=IDEMPOTENCY_KEY_HEADER,
    )
