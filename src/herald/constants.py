"""Names that cross a wire or a process boundary, kept in one place.

Receivers, other processes and other versions of Herald depend on these strings: change one
only with a new version in its name. Log event names that are not also wire names live with
the code that logs them.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CHANNEL_NEEDS_REAUTH",
    "DELIVERY_FAILED",
    "DELIVERY_PUBLISHED",
    "DELIVERY_UNCONFIRMED",
    "MIGRATION_LOCK_PREFIX",
    "NOTIFY_PREFIX",
    "WEBHOOK_EVENTS",
]

# -- webhook events: what a workspace's webhooks subscribe to (docs/api.md) -------------------
DELIVERY_PUBLISHED: Final = "delivery.published"
DELIVERY_FAILED: Final = "delivery.failed"
#: Herald stopped checking on its own whether a post landed: the user has to decide.
DELIVERY_UNCONFIRMED: Final = "delivery.unconfirmed"
CHANNEL_NEEDS_REAUTH: Final = "channel.needs_reauth"
#: Every webhook event, in the order the API lists them.
WEBHOOK_EVENTS: Final = (
    DELIVERY_PUBLISHED,
    DELIVERY_FAILED,
    DELIVERY_UNCONFIRMED,
    CHANNEL_NEEDS_REAUTH,
)

# -- PostgreSQL: names other processes on the same database see -------------------------------
#: LISTEN/NOTIFY channel for "work is due", followed by the schema name (63 bytes at most).
NOTIFY_PREFIX: Final = "herald.v1.due."
#: Advisory lock taken while migrating, followed by the schema name.
MIGRATION_LOCK_PREFIX: Final = "herald.migrations:"
