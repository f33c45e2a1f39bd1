"""Webhook subscriptions of a workspace: a URL, the events it wants, a signing secret.

The secret (``whsec_`` + 256 random bits) is generated here, shown once to the caller, and
stored encrypted (:class:`~herald.service.vault.Vault`); :mod:`herald.service.webhook_sender`
decrypts it to sign each request. Events are recorded by the store for every subscribed webhook
in the same transaction as the change they report (the outbox), so a webhook sees every event
that happens after it was created, at least once.

Nothing is dropped silently: the owner lists a webhook's events (sent, failed after every
attempt, pending), replays a finished one, and enables a webhook that was disabled for
failing too long (its events were kept meanwhile).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from herald.constants import WEBHOOK_EVENTS
from herald.domain import (
    REPLAYABLE_EVENTS,
    Webhook,
    WebhookEventRecord,
    WebhookEventState,
    new_id,
    utcnow,
)
from herald.egress.policy import EgressPolicy
from herald.errors import Conflict, EgressRefused, InvalidInput, NotFound
from herald.service.ownership import owned_one
from herald.service.vault import Vault
from herald.types import Catalog

__all__ = ["EventCursor", "NewWebhook", "WebhookRegistry", "check_webhook_url"]

MAX_URL_CHARS = 2048
_BAD_CURSOR = "the cursor is not one this API handed out"
_EVENT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class NewWebhook:
    webhook: Webhook
    secret: str  # shown once


def check_webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials in it."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise InvalidInput("not a valid URL", field="url") from None
    del port
    if len(url) > MAX_URL_CHARS or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"give an absolute http(s) URL of at most {MAX_URL_CHARS} characters", field="url"
        )
    if parts.username or parts.password:
        raise InvalidInput("a webhook URL must not carry a user name or password", field="url")
    return url


@dataclass(frozen=True, slots=True)
class EventCursor:
    """A position in a webhook's events, ordered by id; opaque to callers."""

    event_id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(self.event_id.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> EventCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidInput(_BAD_CURSOR, field="cursor") from None
        if not _EVENT_ID.match(raw):  # only ids Herald makes: no text a store would refuse
            raise InvalidInput(_BAD_CURSOR, field="cursor")
        return cls(raw)


class WebhookRegistry:
    """``egress``: where webhooks may point (public addresses only, by default); checked at
    registration for what the URL's name resolves to now, and again at every send."""

    def __init__(
        self,
        store: Catalog,
        vault: Vault,
        *,
        clock: Callable[[], datetime] = utcnow,
        egress: EgressPolicy | None = None,
    ) -> None:
        self._store = store
        self._vault = vault
        self._clock = clock
        self._egress = egress or EgressPolicy()

    async def create(self, workspace_id: str, url: str, events: Sequence[str]) -> NewWebhook:
        check_webhook_url(url)
        try:
            await self._egress.check_name(urlsplit(url).hostname or "")
        except EgressRefused:
            raise InvalidInput("webhook URL refused: address not allowed", field="url") from None
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if unknown or not events:
            raise InvalidInput(
                f"events are one or more of {', '.join(WEBHOOK_EVENTS)}", field="events"
            )
        wanted = tuple(e for e in WEBHOOK_EVENTS if e in events)  # canonical order, no repeats
        webhook = Webhook(new_id("wh"), workspace_id, url, wanted, created_at=self._clock())
        secret = f"whsec_{secrets.token_urlsafe(32)}"
        await self._store.add_webhook(webhook, self._vault.encrypt(secret.encode()))
        return NewWebhook(webhook, secret)

    async def list_webhooks(self, workspace_id: str) -> list[Webhook]:
        return await self._store.list_webhooks(workspace_id)

    async def get(self, workspace_id: str, webhook_id: str) -> Webhook:
        return owned_one(await self._store.list_webhooks(workspace_id), webhook_id, "webhook")

    async def delete(self, workspace_id: str, webhook_id: str) -> None:
        await self.get(workspace_id, webhook_id)
        await self._store.delete_webhook(webhook_id)

    async def enable(self, workspace_id: str, webhook_id: str) -> Webhook:
        """Switch the webhook (back) on: its kept events go out again, at once. Enabling one
        that is enabled only clears its failure record (its next event is tried now)."""
        await self.get(workspace_id, webhook_id)
        await self._store.enable_webhook(webhook_id)
        return await self.get(workspace_id, webhook_id)

    async def events(
        self,
        workspace_id: str,
        webhook_id: str,
        *,
        state: WebhookEventState | None,
        after: EventCursor | None,
        limit: int,
    ) -> tuple[list[WebhookEventRecord], EventCursor | None]:
        """One page of the webhook's events (oldest first) and the next page's cursor, if any."""
        await self.get(workspace_id, webhook_id)
        found = await self._store.list_webhook_events(
            webhook_id,
            state=state,
            after_id="" if after is None else after.event_id,
            limit=limit + 1,
        )
        page = found[:limit]
        following = EventCursor(page[-1].event.id) if len(found) > limit else None
        return page, following

    async def replay(self, workspace_id: str, webhook_id: str, event_id: str) -> WebhookEventRecord:
        """Send a finished event again, with every attempt to use again (409 while it is
        pending or sending: it is on its way already)."""
        await self.get(workspace_id, webhook_id)
        record = await self._store.get_webhook_event(event_id)
        if record.event.webhook_id != webhook_id:  # another webhook's, maybe another tenant's
            raise NotFound("webhook event", event_id)
        if not await self._store.replay_webhook_event(event_id, at=self._clock()):
            states = " or ".join(sorted(REPLAYABLE_EVENTS))
            raise Conflict(
                f"only a {states} event can be replayed; this one is "
                f"{(await self._store.get_webhook_event(event_id)).state}: it is on its way"
            )
        return await self._store.get_webhook_event(event_id)
