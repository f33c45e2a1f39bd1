"""Parked channels: those this engine found needing the user (a token the platform refused).

Parking a channel records its new status in the store, with its webhook event, and drops its
cached secrets. Jobs of a parked channel that were claimed before it was parked go back to the
store unsent rather than make requests the platform is bound to refuse; the store holds them
until the user re-authorises the channel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from herald.constants import CHANNEL_NEEDS_REAUTH
from herald.domain import Channel, ChannelStatus
from herald.errors import NotFound
from herald.types import CredentialResolver, EngineStore

__all__ = ["ParkedChannels"]


@dataclass(eq=False, slots=True)
class ParkedChannels:
    store: EngineStore
    credentials: CredentialResolver
    events_recorded: Callable[[], None]  # a webhook event was written: wakes the sender
    _parked: set[str] = field(default_factory=set, init=False)  # channel ids

    async def park(self, channel: Channel, status: ChannelStatus) -> None:
        self.credentials.forget(channel)
        try:
            await self.store.set_channel_status(channel.id, status, event=CHANNEL_NEEDS_REAUTH)
        except NotFound:
            # Its workspace was erased while the job was held: nothing is left to park, and
            # the job's own write back finds no row either.
            return
        self.events_recorded()
        self._parked.add(channel.id)

    async def holds(self, channel: Channel) -> bool:
        """True while ``channel`` is parked; the store is asked only about parked channels,
        and one the user re-authorised meanwhile is let go."""
        if channel.id not in self._parked:
            return False
        current = await self.store.get_channel(channel.id)
        if current.status is ChannelStatus.ACTIVE:
            self._parked.discard(channel.id)
            return False
        return True
