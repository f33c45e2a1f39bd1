"""Webhook delivery: outbox events POSTed to their subscribers, signed, retried, at least once.

The store writes one outbox row per (event, subscribed webhook) in the transaction of the
change it reports (:class:`~herald.types.Outbox`). The :class:`WebhookSender` claims due rows
in batches under a lease, POSTs each one, and settles it: sent, retried later (exponential
backoff with full jitter, :mod:`herald.backoff`), or given up after
``webhooks.max_attempts`` (kept as ``failed``, for its owner to list and replay). It runs as
its own task with its own concurrency cap, so a slow receiver never holds up publishing, and
it sleeps until the next event is due or it is woken (the engine wakes it when it records an
event), never on a fixed beat. While the store is away
(:class:`~herald.errors.StoreUnavailable`) it tries again after a growing back-off rather
than stopping.

Fair between receivers and tenants: the claim caps what one webhook
(``webhooks.endpoint_concurrency``, one while it is failing), one workspace
(``webhooks.workspace_concurrency``) and all failing webhooks together (as much as one
workspace) hold in flight, across every sender, and takes the workspaces in turn; a webhook
whose attempt failed is held back, then disabled if it keeps failing
(:mod:`herald.service.webhook_health`). So a dead or slow receiver, however many events it
has waiting, never fills the sender's concurrency: another workspace's events go out as soon
as they are recorded.

The request (wire format v1):

- body: the event's JSON payload plus ``"id"``, the event id;
- ``Herald-Event-Id``, ``Herald-Event``: the event id and name;
- ``Herald-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, keyed with
  the webhook's secret (the ``whsec_...`` string, as UTF-8).

Receivers check the signature with :func:`verify` (or its few lines in another language),
refuse timestamps too far from their clock (replays), and dedupe by event id: a request that
timed out may have been received, and is sent again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from herald.backoff import Backoff, full_jitter
from herald.config import WebhookSettings
from herald.domain import Webhook, WebhookEvent, WebhookHealth, utcnow
from herald.egress.http import guarded_session
from herald.egress.policy import EgressPolicy
from herald.errors import EgressRefused, NotFound, StoreUnavailable
from herald.service.vault import SecretUnreadable, Vault
from herald.service.webhook_health import EndpointPolicy
from herald.types import Store
from herald.wakeup import wait_first

__all__ = [
    "EVENT_HEADER",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "WebhookSender",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "Herald-Signature"
EVENT_ID_HEADER = "Herald-Event-Id"
EVENT_HEADER = "Herald-Event"
USER_AGENT = "Herald-Webhooks/1"

log = logging.getLogger("herald.webhooks")

T = TypeVar("T")


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The ``Herald-Signature`` header value for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(
    secret: str, body: bytes, header: str, *, tolerance_s: float = 300.0, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret``, within ``tolerance_s`` of ``now``."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in fields.get("v1", []))


@dataclass(frozen=True, slots=True)
class _Target:
    webhook: Webhook
    secret: str


class WebhookSender:
    """Sends the outbox: claims, POSTs, settles. One per process, beside the engine."""

    def __init__(
        self,
        store: Store,
        vault: Vault,
        settings: WebhookSettings,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utcnow,
        store_backoff: Backoff | None = None,
        egress: EgressPolicy | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._store = store
        # On the process's registry (``/metrics``) when given, else counted unseen.
        self._outcomes = Counter(
            "herald_webhook_deliveries_total",
            "Webhook attempts by outcome: delivered, failed (tried again later or given up),"
            " disabled (a webhook switched off after failing too long).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("delivered", "failed", "disabled"):  # at 0 before the first
            self._outcomes.labels(outcome)
        # Where webhooks may point: public addresses only, unless the operator allows more.
        self._egress = egress or EgressPolicy()
        # While the store is away; the engine's settings give it (engine.store_backoff_*).
        self._store_backoff = store_backoff or Backoff(base_s=0.1, cap_s=5.0, rng=rng)
        self._vault = vault
        self._settings = settings
        self._endpoints = EndpointPolicy.of(settings)
        self._claimed_at: datetime | None = None  # the last claim's time
        self._rng = rng or random.Random()
        self._clock = clock
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._freed = asyncio.Event()
        self.idle = asyncio.Event()  # set while it sleeps with nothing due (tests wait on it)
        self.sent = 0
        self.failed = 0

    # -- control ----------------------------------------------------------------------------
    def notify(self) -> None:
        """Events were recorded: look for due ones now."""
        self._wake.set()

    def request_stop(self) -> None:
        """Stop claiming; requests in flight get ``shutdown_grace_s``; the rest are re-sent
        by whoever claims them once their lease runs out."""
        self._stopping.set()

    def drain(self) -> None:
        """Stop once nothing is in flight and nothing is due (a burst run's end)."""
        self._draining = True
        self._wake.set()

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self, *, burst: bool = False) -> None:
        """Send until stopped (or, with ``burst``, until nothing is left to send)."""
        self._draining = self._draining or burst
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
        async with guarded_session(
            self._egress,
            limit=self._settings.concurrency,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
        ) as session:
            log.info("webhooks.started", extra={"concurrency": self._settings.concurrency})
            try:
                await self._loop(session)
            finally:
                await self._finish_in_flight()
        log.info("webhooks.stopped", extra={"sent": self.sent, "failed": self.failed})

    async def _loop(self, session: aiohttp.ClientSession) -> None:
        while not self._stopping.is_set():
            try:
                done = await self._round(session)
            except StoreUnavailable as exc:
                wait_s = self._store_backoff.next_s()
                log.warning("webhooks.store_retry", extra={"error": str(exc), "delay_s": wait_s})
                await wait_first(self._stopping, within_s=wait_s)
                continue
            self._store_backoff.reset()
            if done:
                return

    async def _round(self, session: aiohttp.ClientSession) -> bool:
        """Claim once, then wait until more may be due; True once a drain is complete."""
        self._wake.clear()
        self._freed.clear()
        free = self._settings.concurrency - len(self._tasks)
        claimed = await self._claim(session, free) if free > 0 else 0
        if claimed and claimed == min(free, self._settings.batch):
            if len(self._tasks) >= self._settings.concurrency:
                await wait_first(self._freed, self._stopping, within_s=None)
            return False  # a full batch: there may be more due
        if self._draining and not self._tasks and await self._nothing_due():
            return True
        sleep_s = await self._sleep_s()
        if not self._tasks:
            self.idle.set()
        await wait_first(self._wake, self._stopping, self._freed, within_s=sleep_s)
        self.idle.clear()
        return False

    async def _claim(self, session: aiohttp.ClientSession, free: int) -> int:
        self._claimed_at = now = self._clock()
        events = await self._store.claim_webhook_events(
            now=now,
            limit=min(free, self._settings.batch),
            lease_until=now + timedelta(seconds=self._settings.lease_s),
            per_webhook=self._settings.endpoint_concurrency,
            per_workspace=self._settings.workspace_share,
            # Failing webhooks, whatever their workspaces, share one workspace's worth: many
            # tenants' dead receivers cannot fill the sender either.
            probes=self._settings.workspace_share,
        )
        if not events:
            return 0
        # Claimed: from now on each event is tried until sent or stopped (else its lease).
        targets = await self._until_answered(lambda: self._targets(events))
        for event in events:
            task = asyncio.create_task(self._send(session, event, targets.get(event.webhook_id)))
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return len(events)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhooks.sender_error", exc_info=task.exception())

    async def _sleep_s(self) -> float:
        """Until the next event is due, at most ``idle_recheck_s`` (events written by other
        processes cannot wake us)."""
        upper = self._settings.idle_recheck_s
        next_at = await self._store.next_webhook_event_at()
        if next_at is None:
            return upper
        if self._claimed_at is not None and next_at <= self._claimed_at:
            # Due already when the claim left it: the caps hold it back until a request in
            # flight ends (ours wake us; another sender's are seen within idle_recheck_s).
            return upper
        return max(0.0, min(upper, (next_at - self._clock()).total_seconds()))

    async def _nothing_due(self) -> bool:
        next_at = await self._store.next_webhook_event_at()
        return next_at is None or next_at > self._clock()

    async def _finish_in_flight(self) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=self._settings.shutdown_grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    # -- one event --------------------------------------------------------------------------
    async def _targets(self, events: list[WebhookEvent]) -> dict[str, _Target]:
        """Each webhook of the batch with its decrypted secret; deleted ones are absent."""
        wanted = {e.webhook_id for e in events}
        found: dict[str, _Target] = {}
        for workspace_id in sorted({e.workspace_id for e in events}):
            for webhook in await self._store.list_webhooks(workspace_id):
                if webhook.id not in wanted:
                    continue
                try:
                    secret = self._vault.decrypt(await self._store.get_webhook_secret(webhook.id))
                except (NotFound, SecretUnreadable):
                    log.error("webhooks.secret_unusable", extra={"webhook_id": webhook.id})
                    continue
                found[webhook.id] = _Target(webhook, secret.decode())
        return found

    async def _send(
        self, session: aiohttp.ClientSession, event: WebhookEvent, target: _Target | None
    ) -> None:
        if target is None:
            await self._settle(event, sent=False, error="the webhook was deleted", final=True)
            return
        body = _body(event)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.id,
            EVENT_HEADER: event.event,
            SIGNATURE_HEADER: sign(target.secret, body, timestamp=stamp),
        }
        error: str | None = None
        try:
            async with session.post(
                target.webhook.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.read()
                if not 200 <= response.status < 300:
                    error = f"the receiver answered HTTP {response.status}"
        except EgressRefused:
            error = "webhook URL refused: address not allowed"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"the request failed: {type(exc).__name__}"
        await self._settle(event, sent=error is None, error=error)

    async def _settle(
        self, event: WebhookEvent, *, sent: bool, error: str | None, final: bool = False
    ) -> None:
        fields: dict[str, Any] = {
            "event_id": event.id,
            "webhook_id": event.webhook_id,
            "workspace_id": event.workspace_id,
            "event": event.event,
            "attempt": event.attempts,
        }
        now = self._clock()
        if sent:
            self.sent += 1
            self._outcomes.labels("delivered").inc()
            await self._until_answered(
                lambda: self._store.settle_webhook_event(
                    event.id, sent=True, next_attempt_at=None, error=None, at=now
                )
            )
            log.info("webhook.sent", extra=fields)
            return
        next_at: datetime | None = None
        if not final and event.attempts < self._settings.max_attempts:
            delay = full_jitter(
                max(1, event.attempts),
                base_s=self._settings.backoff_base_s,
                cap_s=self._settings.backoff_cap_s,
                rng=self._rng,
            )
            next_at = now + timedelta(seconds=delay)
        health = await self._until_answered(
            lambda: self._store.settle_webhook_event(
                event.id, sent=False, next_attempt_at=next_at, error=error, at=now
            )
        )
        self._outcomes.labels("failed").inc()
        if next_at is None:
            self.failed += 1
            log.warning("webhook.given_up", extra={**fields, "error": error})
        else:
            log.info("webhook.retry", extra={**fields, "error": error})
        if health is not None and not final:
            await self._endpoint_failed(event, health, error or "failed", now)

    async def _endpoint_failed(
        self, event: WebhookEvent, health: WebhookHealth, error: str, now: datetime
    ) -> None:
        """Hold the webhook back; disable it once it has failed long enough."""
        until = self._endpoints.held_until(health, now)
        await self._until_answered(lambda: self._store.hold_webhook(event.webhook_id, until))
        fields = {
            "webhook_id": event.webhook_id,
            "workspace_id": event.workspace_id,
            "failures": health.failures,
        }
        log.info("webhook.held", extra={**fields, "until": until.isoformat()})
        reason = self._endpoints.disable_reason(health, now, error)
        if reason is None:
            return
        disabled = await self._until_answered(
            lambda: self._store.disable_webhook(event.webhook_id, reason=reason, at=now)
        )
        if disabled:
            self._outcomes.labels("disabled").inc()
            log.warning("webhook.disabled", extra={**fields, "reason": reason})

    async def _until_answered(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` again while the store is away; its error once a stop is requested (the
        event's lease then has it sent again: at least once)."""
        backoff = Backoff(base_s=self._store_backoff.base_s, cap_s=self._store_backoff.cap_s)
        while True:
            try:
                return await call()
            except StoreUnavailable as exc:
                if self._stopping.is_set():
                    raise
                wait_s = backoff.next_s()
                log.warning("webhooks.store_retry", extra={"error": str(exc), "delay_s": wait_s})
                await wait_first(self._stopping, within_s=wait_s)


def _body(event: WebhookEvent) -> bytes:
    payload: Mapping[str, Any] = {**event.payload, "id": event.id}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
