"""Parked channels: those this engine found needing the user (a token the platform refused).

Parking a channel records its new status in the store, with its webhook event, and drops its
cached secrets. Jobs of a parked channel that were claimed before it was parked go back to the
store unsent rather than make requests the platform is bound to refuse; the store holds them
until the user re-authorises the channel.
"""

from __future__ import annotations

from collections.abc import Callable

from herald.constants import CHANNEL_NEEDS_REAUTH
from herald.domain import Channel, ChannelStatus
from herald.types import CredentialResolver, EngineStore

__all__ = ["ParkedChannels"]


class ParkedChannels:
    def __init__(
        self, store: EngineStore, credentials: CredentialResolver, events: Callable[[], None]
    ) -> None:
        self._store = store
        self._credentials = credentials
        self._events_recorded = events  # a webhook event was written: wakes the sender
        self._parked: set[str] = set()  # channel ids

    async def park(self, channel: Channel, status: ChannelStatus) -> None:
        await self._store.set_channel_status(channel.id, status, event=CHANNEL_NEEDS_REAUTH)
        self._events_recorded()
        self._credentials.forget(channel)
        self._parked.add(channel.id)

    async def holds(self, channel: Channel) -> bool:
        """True while ``channel`` is parked; the store is asked only about parked channels,
        and one the user re-authorised meanwhile is let go."""
        if channel.id not in self._parked:
            return False
        current = await self._store.get_channel(channel.id)
        if current.status is ChannelStatus.ACTIVE:
            self._parked.discard(channel.id)
            return False
        return True
