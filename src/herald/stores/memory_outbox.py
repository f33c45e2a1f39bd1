"""The in-memory store's webhooks and their outbox (see :mod:`herald.stores.memory`): events
recorded with the changes they report, claimed fairly between webhooks and workspaces, kept
once finished, and each webhook's failure record (hold, disable)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from herald.constants import WEBHOOK_DISABLED
from herald.domain import (
    REPLAYABLE_EVENTS,
    Channel,
    Delivery,
    Platform,
    Post,
    Webhook,
    WebhookEvent,
    WebhookEventRecord,
    WebhookHealth,
    new_id,
)
from herald.domain import WebhookEventState as E
from herald.errors import InvalidInput, NotFound
from herald.stores.contract import start_of_day
from herald.stores.memory_keys import MemoryKeys

__all__ = ["MemoryOutbox"]


class _Hook:
    """A webhook with its secret and what the sender keeps about it."""

    __slots__ = ("deleted", "failures", "held_until", "secret", "webhook")

    def __init__(self, webhook: Webhook, secret: bytes) -> None:
        self.webhook = webhook
        self.secret = secret
        self.deleted = False
        self.failures = 0
        self.held_until: datetime | None = None

    @property
    def failing(self) -> bool:
        """Its last attempt failed: one request at a time, counted among the probes."""
        return self.failures > 0 and not self.deleted

    def claimable(self, now: datetime) -> bool:
        """Its events may be handed out: a deleted one's too, so that they are settled."""
        if self.deleted:
            return True
        held = self.held_until is not None and self.held_until > now
        return self.webhook.enabled and not held


class _Outgoing:
    __slots__ = (
        "attempts",
        "event",
        "finished_at",
        "last_attempt_at",
        "last_error",
        "lease_until",
        "next_attempt_at",
        "state",
    )

    def __init__(self, event: WebhookEvent, at: datetime) -> None:
        self.event = event
        self.state = E.PENDING
        self.attempts = 0
        self.next_attempt_at: datetime | None = at
        self.lease_until: datetime | None = None
        self.last_error: str | None = None
        self.last_attempt_at: datetime | None = None
        self.finished_at: datetime | None = None

    def due_key(self) -> tuple[datetime, str]:
        """(when it is due, id): the order events of one webhook go in (pending ones only)."""
        return (self.next_attempt_at or self.event.created_at, self.event.id)

    def record(self) -> WebhookEventRecord:
        return WebhookEventRecord(
            event=replace(self.event, attempts=self.attempts),
            state=self.state,
            last_error=self.last_error,
            next_attempt_at=self.next_attempt_at,
            last_attempt_at=self.last_attempt_at,
            finished_at=self.finished_at,
        )


class MemoryOutbox(MemoryKeys):
    _posts: dict[str, Post]
    _channels: dict[str, Channel]

    async def count_webhook_backlog(self) -> int:
        return sum(o.state in (E.PENDING, E.SENDING) for o in self._outbox.values())

    def _init_outbox(self) -> None:
        self._hooks: dict[str, _Hook] = {}
        self._outbox: dict[str, _Outgoing] = {}

    def _live_hook(self, webhook_id: str) -> _Hook:
        hook = self._hooks.get(webhook_id)
        if hook is None or hook.deleted:
            raise NotFound("webhook", webhook_id)
        return hook

    # -- webhooks ---------------------------------------------------------------------------
    async def add_webhook(self, webhook: Webhook, secret_ciphertext: bytes) -> None:
        if webhook.id in self._hooks:
            raise InvalidInput("a webhook with this id exists")
        self._mark_claim()
        self._hooks[webhook.id] = _Hook(webhook, secret_ciphertext)

    async def list_webhooks(self, workspace_id: str) -> list[Webhook]:
        hooks = [
            h.webhook
            for h in self._hooks.values()
            if h.webhook.workspace_id == workspace_id and not h.deleted
        ]
        return sorted(hooks, key=lambda w: (w.created_at, w.id))

    async def get_webhook_secret(self, webhook_id: str) -> bytes:
        return self._live_hook(webhook_id).secret

    async def set_webhook_secret(self, webhook_id: str, ciphertext: bytes) -> None:
        hook = self._live_hook(webhook_id)
        self._mark_claim()
        hook.secret = ciphertext

    async def delete_webhook(self, webhook_id: str) -> None:
        hook = self._live_hook(webhook_id)
        self._mark_claim()
        hook.deleted = True

    async def enable_webhook(self, webhook_id: str) -> None:
        hook = self._live_hook(webhook_id)
        self._mark_claim()
        hook.webhook = replace(
            hook.webhook, disabled_at=None, disabled_reason=None, failing_since=None
        )
        hook.failures, hook.held_until = 0, None

    async def hold_webhook(self, webhook_id: str, until: datetime) -> None:
        hook = self._hooks.get(webhook_id)
        if hook is not None and hook.failures > 0:
            hook.held_until = max(until, hook.held_until or until)

    async def disable_webhook(self, webhook_id: str, *, reason: str, at: datetime) -> bool:
        hook = self._hooks.get(webhook_id)
        if hook is None or hook.deleted or not hook.webhook.enabled or hook.failures == 0:
            return False
        hook.webhook = replace(hook.webhook, disabled_at=at, disabled_reason=reason)
        payload = {
            "event": WEBHOOK_DISABLED,
            "webhook_id": webhook_id,
            "url": hook.webhook.url,
            "reason": reason,
            "occurred_at": _iso(at),
        }
        others = (h for h in self._hooks.values() if h.webhook.id != webhook_id)
        self._record(others, hook.webhook.workspace_id, WEBHOOK_DISABLED, payload, at)
        return True

    async def record_platform_event(
        self, platform: Platform, event: str, payload: Mapping[str, object], at: datetime
    ) -> int:
        workspaces = {
            c.workspace_id
            for c in self._channels.values()
            if c.platform is platform and c.deleted_at is None
        }
        day = start_of_day(at)
        told = {
            o.event.webhook_id
            for o in self._outbox.values()
            if o.event.event == event
            and o.event.created_at >= day
            and o.event.payload.get("platform") == platform.value
            and o.event.payload.get("version") == payload.get("version")
        }
        hooks = [h for h in self._hooks.values() if h.webhook.id not in told]
        before = len(self._outbox)
        for workspace_id in sorted(workspaces):
            self._record(hooks, workspace_id, event, dict(payload), at)
        return len(self._outbox) - before

    # -- recording events -------------------------------------------------------------------
    def _record(
        self,
        hooks: Iterable[_Hook],
        workspace_id: str,
        event: str,
        payload: dict[str, Any],
        at: datetime,
    ) -> None:
        for hook in hooks:
            webhook = hook.webhook
            if hook.deleted or webhook.workspace_id != workspace_id:
                continue
            if event in webhook.events:
                event_id = new_id("evt")
                record = WebhookEvent(event_id, webhook.id, workspace_id, event, payload, 0, at)
                self._outbox[event_id] = _Outgoing(record, at)

    def _emit(self, workspace_id: str, event: str, payload: dict[str, Any], at: datetime) -> None:
        self._record(self._hooks.values(), workspace_id, event, payload, at)

    def _emit_delivery(self, delivery: Delivery, event: str, at: datetime) -> None:
        payload = {
            "event": event,
            "delivery_id": delivery.id,
            "post_id": delivery.post_id,
            "channel_id": delivery.channel_id,
            "platform": delivery.platform.value,
            "state": delivery.state.value,
            "external_id": delivery.external_id,
            "error": delivery.last_error,
            "occurred_at": _iso(at),
        }
        self._emit(self._posts[delivery.post_id].workspace_id, event, payload, at)

    def _emit_channel(self, channel: Channel, event: str, at: datetime) -> None:
        payload = {
            "event": event,
            "channel_id": channel.id,
            "platform": channel.platform.value,
            "status": channel.status.value,
            "occurred_at": _iso(at),
        }
        self._emit(channel.workspace_id, event, payload, at)

    # -- sending ----------------------------------------------------------------------------
    async def claim_webhook_events(
        self,
        *,
        now: datetime,
        limit: int,
        lease_until: datetime,
        per_webhook: int | None = None,
        per_workspace: int | None = None,
        probes: int | None = None,
    ) -> list[WebhookEvent]:
        for out in self._outbox.values():
            if out.state is E.SENDING and out.lease_until is not None and out.lease_until < now:
                out.state, out.lease_until, out.next_attempt_at = E.PENDING, None, now
        sending = [o.event for o in self._outbox.values() if o.state is E.SENDING]
        candidates = self._with_room(now, per_webhook or limit, sending)
        failing = sorted(
            (o for o in candidates if self._hooks[o.event.webhook_id].failing),
            key=_Outgoing.due_key,
        )
        busy_probes = sum(self._hooks[e.webhook_id].failing for e in sending)
        cut = {o.event.id for o in failing[max(0, (probes or limit) - busy_probes) :]}
        kept = [o for o in candidates if o.event.id not in cut]
        busy_spaces = Counter(e.workspace_id for e in sending)
        picked = _in_turns(kept, per_workspace or limit, busy_spaces)[:limit]
        for out in picked:
            out.state, out.lease_until, out.attempts = E.SENDING, lease_until, out.attempts + 1
            out.last_attempt_at = now
        return [replace(o.event, attempts=o.attempts) for o in picked]

    def _with_room(
        self, now: datetime, per_webhook: int, sending: list[WebhookEvent]
    ) -> list[_Outgoing]:
        """Each claimable webhook's most overdue events, as many as it has room for."""
        busy = Counter(e.webhook_id for e in sending)
        due: dict[str, list[_Outgoing]] = defaultdict(list)
        for out in self._outbox.values():
            if out.state is E.PENDING and out.due_key()[0] <= now:
                due[out.event.webhook_id].append(out)
        found: list[_Outgoing] = []
        for webhook_id, waiting in due.items():
            hook = self._hooks[webhook_id]
            if hook.claimable(now):
                room = max(0, (1 if hook.failing else per_webhook) - busy[webhook_id])
                found += sorted(waiting, key=_Outgoing.due_key)[:room]
        return found

    async def settle_webhook_event(
        self,
        event_id: str,
        *,
        sent: bool,
        next_attempt_at: datetime | None,
        error: str | None,
        at: datetime,
    ) -> WebhookHealth | None:
        out = self._outbox.get(event_id)
        if out is None or out.state is not E.SENDING:
            return None
        if sent:
            out.state = E.SENT
        else:
            out.state = E.PENDING if next_attempt_at is not None else E.FAILED
        out.next_attempt_at, out.lease_until, out.last_error = next_attempt_at, None, error
        out.finished_at = None if out.state is E.PENDING else at
        return self._count_outcome(self._hooks[out.event.webhook_id], sent, at)

    @staticmethod
    def _count_outcome(hook: _Hook, sent: bool, at: datetime) -> WebhookHealth:
        if sent:
            hook.failures, hook.held_until = 0, None
            hook.webhook = replace(hook.webhook, failing_since=None)
        else:
            hook.failures += 1
            if hook.webhook.failing_since is None:
                hook.webhook = replace(hook.webhook, failing_since=at)
        return WebhookHealth(hook.failures, hook.webhook.failing_since)

    async def next_webhook_event_at(self) -> datetime | None:
        times = []
        for out in self._outbox.values():
            if out.state is not E.PENDING:
                continue
            hook = self._hooks[out.event.webhook_id]
            if hook.deleted or hook.webhook.enabled:
                due = out.due_key()[0]
                held = hook.held_until if not hook.deleted else None
                times.append(max(due, held) if held is not None else due)
        return min(times, default=None)

    # -- what the owner sees ----------------------------------------------------------------
    async def list_webhook_events(
        self,
        webhook_id: str,
        *,
        state: E | None = None,
        after_id: str = "",
        limit: int = 50,
    ) -> list[WebhookEventRecord]:
        found = sorted(
            (
                o
                for o in self._outbox.values()
                if o.event.webhook_id == webhook_id
                and o.event.id > after_id
                and (state is None or o.state is state)
            ),
            key=lambda o: o.event.id,
        )
        return [o.record() for o in found[:limit]]

    async def get_webhook_event(self, event_id: str) -> WebhookEventRecord:
        out = self._outbox.get(event_id)
        if out is None:
            raise NotFound("webhook event", event_id)
        return out.record()

    async def replay_webhook_event(self, event_id: str, *, at: datetime) -> bool:
        out = self._outbox.get(event_id)
        if out is None:
            raise NotFound("webhook event", event_id)
        if out.state not in REPLAYABLE_EVENTS:
            return False
        self._mark_claim()
        out.state, out.attempts, out.next_attempt_at, out.finished_at = E.PENDING, 0, at, None
        return True


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def _in_turns(
    candidates: list[_Outgoing], per_workspace: int, busy: Counter[str]
) -> list[_Outgoing]:
    """The workspaces in turn (each one's most overdue, then each one's next...), each up to
    its room under ``per_workspace``."""
    by_space: dict[str, list[_Outgoing]] = defaultdict(list)
    for out in candidates:
        by_space[out.event.workspace_id].append(out)
    turns: list[tuple[int, datetime, str, _Outgoing]] = []
    for workspace_id, waiting in by_space.items():
        room = max(0, per_workspace - busy[workspace_id])
        for turn, out in enumerate(sorted(waiting, key=_Outgoing.due_key)[:room]):
            turns.append((turn, *out.due_key(), out))
    turns.sort(key=lambda t: t[:3])
    return [t[3] for t in turns]
