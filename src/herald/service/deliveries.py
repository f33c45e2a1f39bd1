"""What a user can do to deliveries: cancel, reschedule, retry, each a guarded transition.

Every change goes through ``store.apply`` as a :class:`~herald.domain.Transition`, so the
state machine (:mod:`herald.states`) is the judge: a delivery the engine moved on meanwhile
(a claim, a publish) is simply not changed, and the caller is told (HTTP 409) rather than
left to believe otherwise. Nothing here sends anything: the engine does, when it is due.

- **cancel**: deliveries not yet published (scheduled, retry_wait, claimed, unconfirmed)
  become ``cancelled``. A claimed delivery's engine loses its claim and sends nothing; one
  being published right now (``publishing``) cannot be stopped.
- **reschedule**: deliveries still waiting (scheduled, retry_wait) get a new due time, given
  in any of the forms of :mod:`herald.service.scheduling`.
- **retry**: a failed or unconfirmed delivery is scheduled again, due now, with a fresh retry
  budget. An unconfirmed one keeps its duty to be looked up first: Herald never resends on a
  guess, even when asked to retry.

None of them touches a delivery a CSV import holds (:attr:`Delivery.held
<herald.domain.Delivery.held>`: stored, not made due yet): the import may still remove it
whole, and one made due meanwhile could be published before that. The store's guarded write
refuses them (``Transition.unheld``), whatever was read before, and the caller is told that
the post is being imported (HTTP 409).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from herald.domain import Attempt, Delivery, Transition
from herald.errors import Conflict, NotFound
from herald.service.base import Service
from herald.service.ownership import owned_delivery, owned_post
from herald.service.posts import PostView
from herald.service.scheduling import Scheduler, When
from herald.states import CANCELLABLE, DeliveryState

__all__ = ["CANCELLABLE", "MOVABLE", "RETRYABLE", "DeliveryActions"]

S = DeliveryState
MOVABLE = frozenset({S.SCHEDULED, S.RETRY_WAIT})
RETRYABLE = frozenset({S.FAILED, S.UNCONFIRMED})


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryActions(Service):
    scheduler: Scheduler

    async def get(self, workspace_id: str, delivery_id: str) -> tuple[Delivery, list[Attempt]]:
        delivery, _ = await owned_delivery(self.store, workspace_id, delivery_id)
        return delivery, await self.store.list_attempts(delivery.id)

    # -- a whole post ---------------------------------------------------------------------
    async def cancel_post(self, workspace_id: str, post_id: str) -> PostView:
        post = await owned_post(self.store, workspace_id, post_id)
        deliveries = (await self.store.deliveries_of([post.id]))[post.id]
        _refuse_held(f"post {post.id}", deliveries)
        open_ = [d for d in deliveries if d.state in CANCELLABLE]
        if open_:
            await self.store.apply([_cancel(d) for d in open_])
        # Decided on what the store holds now, not on what was read before: a cancel that
        # ran meanwhile (the same request retried, say) leaves this one nothing to do, and
        # it answers as that one did. A conflict only if the post has nothing cancelled.
        now = (await self.store.deliveries_of([post.id]))[post.id]
        _refuse_held(f"post {post.id}", now)
        if not any(d.state is S.CANCELLED for d in now):
            raise Conflict(
                "nothing left to cancel: every delivery is published, failed, expired or "
                "being published right now"
            )
        return PostView(post, now)

    async def reschedule_post(self, workspace_id: str, post_id: str, when: When) -> PostView:
        post = await owned_post(self.store, workspace_id, post_id)
        targets = {d.channel_id for d in (await self.store.deliveries_of([post.id]))[post.id]}
        async with self.scheduler.holding([when], targets):
            # Read under the lock: a delivery moved meanwhile must not free its old slot for
            # this search (``ignore``) after another request took it.
            current = (await self.store.deliveries_of([post.id]))[post.id]
            _refuse_held(f"post {post.id}", current)
            deliveries = [d for d in current if d.state in MOVABLE]
            if not deliveries:
                raise Conflict(
                    "no delivery of this post is waiting to be published: only scheduled or "
                    "retry_wait deliveries can be moved"
                )
            channels = [await self.store.get_channel(d.channel_id) for d in deliveries]
            due = await self.scheduler.due_times(
                when, channels, self.scheduler.book(), ignore=[d.due_at for d in deliveries]
            )
            moves = [_due_again(d, at) for d, at in zip(deliveries, due, strict=True)]
            done = await self.store.apply(moves)
        if not any(done):
            _refuse_held(f"post {post.id}", (await self.store.deliveries_of([post.id]))[post.id])
            raise Conflict("the deliveries were claimed for publishing meanwhile; not moved")
        self.wake(t.due_at for t, ok in zip(moves, done, strict=True) if ok)
        return PostView(post, (await self.store.deliveries_of([post.id]))[post.id])

    # -- one delivery ---------------------------------------------------------------------
    async def cancel(self, workspace_id: str, delivery_id: str) -> Delivery:
        delivery, _ = await owned_delivery(self.store, workspace_id, delivery_id)
        if delivery.state is S.CANCELLED:
            return delivery
        _refuse_held(f"delivery {delivery.id}", [delivery])
        cancelled = (
            delivery.state in CANCELLABLE and (await self.store.apply([_cancel(delivery)]))[0]
        )
        if not cancelled:
            now = await self.store.get_delivery(delivery_id)
            _refuse_held(f"delivery {delivery.id}", [now])
            raise Conflict(_cannot("cancelled", now))
        return await self.store.get_delivery(delivery_id)

    async def retry(self, workspace_id: str, delivery_id: str) -> Delivery:
        """Schedule a failed or unconfirmed delivery again, due now, with a fresh budget."""
        delivery, _ = await owned_delivery(self.store, workspace_id, delivery_id)
        _refuse_held(f"delivery {delivery.id}", [delivery])
        if delivery.state not in RETRYABLE:
            raise Conflict(_cannot("retried", delivery))
        try:
            channel = await self.store.get_channel(delivery.channel_id)
        except NotFound:
            channel = None
        if channel is None or channel.deleted_at is not None:
            raise Conflict("the delivery's channel was deleted; it cannot be retried")
        # Due now, not at its old time: a delivery that failed long ago must not expire the
        # moment it is claimed (max_lateness_s counts from the due time).
        now = self.clock()
        if not (await self.store.apply([_due_again(delivery, now, retry=True)]))[0]:
            raise Conflict(_cannot("retried", await self.store.get_delivery(delivery_id)))
        self.wake([now])
        return await self.store.get_delivery(delivery_id)


def _due_again(delivery: Delivery, at: datetime, *, retry: bool = False) -> Transition:
    """Back to ``scheduled``, due at ``at``, if no engine holds the delivery: a user never takes
    one out of an engine's hands (one may have claimed it for its look-up meanwhile). A retry
    clears the error and starts a fresh retry budget; a move keeps both."""
    return Transition(
        delivery.id,
        S.SCHEDULED,
        due_at=at,
        next_attempt_at=at,
        error=None if retry else delivery.last_error,
        reset_retries=retry,
        unclaimed=True,
        unheld=True,
    )


def _cancel(delivery: Delivery) -> Transition:
    return Transition(delivery.id, S.CANCELLED, error="cancelled by the user", unheld=True)


def _refuse_held(what: str, deliveries: Iterable[Delivery]) -> None:
    """A 409 if an import holds any of ``deliveries``: nothing may change them before the
    import has made them due (it may still remove them whole)."""
    if any(d.held for d in deliveries):
        raise Conflict(
            f"{what} is being imported: it can be cancelled or moved once its import has "
            "succeeded (GET /v1/imports)"
        )


def _cannot(verb: str, delivery: Delivery) -> str:
    return f"delivery {delivery.id} is {delivery.state.value}: it cannot be {verb} now"
