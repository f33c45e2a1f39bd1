"""Webhook subscriptions of a workspace: a URL, the events it wants, a signing secret.

The secret (``whsec_`` + 256 random bits) is generated here, shown once to the caller, and
stored encrypted (:class:`~herald.service.vault.Vault`); :mod:`herald.service.webhook_sender`
decrypts it to sign each request. Events are recorded by the store for every subscribed webhook
in the same transaction as the change they report (the outbox), so a webhook sees every event
that happens after it was created, at least once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from herald.constants import WEBHOOK_EVENTS
from herald.domain import Webhook, new_id, utcnow
from herald.egress.policy import EgressPolicy
from herald.errors import EgressRefused, InvalidInput
from herald.service.ownership import owned_one
from herald.service.vault import Vault
from herald.types import Catalog

__all__ = ["NewWebhook", "WebhookRegistry", "check_webhook_url"]

MAX_URL_CHARS = 2048


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
