"""Channels as a workspace manages them: connected with credentials that are encrypted at rest,
re-authorised, paused, deleted, and given weekly posting slots.

Credentials given through the API are encrypted with the :class:`~herald.service.vault.Vault`
and kept in the store; the channel's ``credentials_ref`` is ``vault:``. They are never returned,
never logged. Giving new credentials is a re-authorisation: the channel is ``active`` again and
its waiting deliveries are claimed at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from herald.domain import Channel, ChannelStatus, Platform, PostingSlot, new_id
from herald.errors import Conflict, InvalidInput
from herald.service.base import Service
from herald.service.ownership import owned_channel
from herald.service.vault import VAULT_REF, Vault
from herald.timing import zone

__all__ = ["REQUIRED_CREDENTIALS", "ChannelChanges", "ChannelDraft", "ChannelService"]

#: The credentials each platform's connector needs (YouTube refreshes its own tokens).
REQUIRED_CREDENTIALS: Mapping[Platform, tuple[str, ...]] = {
    Platform.FACEBOOK: ("access_token",),
    Platform.INSTAGRAM: ("access_token",),
    Platform.LINKEDIN: ("access_token",),
    Platform.YOUTUBE: ("access_token", "refresh_token", "client_id", "client_secret"),
}


@dataclass(frozen=True, slots=True)
class ChannelDraft:
    platform: Platform
    external_id: str
    name: str
    timezone: str
    credentials: Mapping[str, str]
    region: str | None = None  # None: the deployment's

    def new_channel(self, workspace_id: str) -> Channel:
        """The new channel, active: stored together with its sealed credentials, so the engine
        never sees it without them."""
        return Channel(
            new_id("ch"),
            self.platform,
            self.external_id,
            self.name,
            self.timezone,
            VAULT_REF,
            status=ChannelStatus.ACTIVE,
            workspace_id=workspace_id,
            region=self.region,
        )


@dataclass(frozen=True, slots=True)
class ChannelChanges:
    """A partial update; ``None`` leaves a field as it is."""

    name: str | None = None
    timezone: str | None = None
    credentials: Mapping[str, str] | None = None
    status: ChannelStatus | None = None  # active or disabled


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelService(Service):
    vault: Vault
    #: In a deployment of several regions, the region whose database this is: every channel
    #: of its workspaces publishes from there (None: one region, any channel region routes).
    home_region: str | None = None

    async def create(self, workspace_id: str, draft: ChannelDraft) -> Channel:
        if self.home_region is not None and draft.region not in (None, self.home_region):
            raise InvalidInput(
                f"this workspace's data lives in {self.home_region}: its channels publish from "
                f"there, not from {draft.region}",
                field="region",
            )
        zone(draft.timezone)
        _check_credentials(draft.platform, draft.credentials)
        channel = draft.new_channel(workspace_id)
        sealed = self.vault.encrypt_json(draft.credentials)
        try:
            # One write: a failure leaves nothing behind, never a channel without credentials.
            await self.store.add_channels([channel], secrets={channel.id: sealed})
        except InvalidInput as exc:
            # Accounts are unique per workspace, so this never tells of another workspace's.
            raise Conflict(
                f"this {draft.platform.value} account is already a channel of this workspace",
                field="external_id",
            ) from exc
        return channel

    async def list_channels(self, workspace_id: str) -> list[Channel]:
        return await self.store.list_channels(workspace_id)

    async def get(self, workspace_id: str, channel_id: str) -> Channel:
        return await owned_channel(self.store, workspace_id, channel_id)

    async def update(self, workspace_id: str, channel_id: str, changes: ChannelChanges) -> Channel:
        channel = await owned_channel(self.store, workspace_id, channel_id)
        status = _next_status(channel, changes)
        if changes.timezone is not None:
            zone(changes.timezone)
        if changes.credentials is not None:
            _check_credentials(channel.platform, changes.credentials)
        if changes.name is not None or changes.timezone is not None:
            await self.store.update_channel(
                replace(
                    channel,
                    name=changes.name or channel.name,
                    timezone=changes.timezone or channel.timezone,
                )
            )
        if changes.credentials is not None:
            secret = self.vault.encrypt_json(changes.credentials)
            await self.store.set_channel_secret(channel.id, secret)
        if status is not channel.status or changes.credentials is not None:
            ref = VAULT_REF if changes.credentials is not None else None
            await self.store.set_channel_status(channel.id, status, credentials_ref=ref)
            if status is ChannelStatus.ACTIVE:
                self.wake([self.clock()])  # its waiting deliveries may be due already
        return await owned_channel(self.store, workspace_id, channel_id)

    async def delete(self, workspace_id: str, channel_id: str) -> int:
        """Delete the channel and cancel its pending deliveries; return how many."""
        await owned_channel(self.store, workspace_id, channel_id)
        return await self.store.delete_channel(channel_id, self.clock())

    async def schedule(
        self, workspace_id: str, channel_id: str
    ) -> tuple[Channel, list[PostingSlot]]:
        channel = await owned_channel(self.store, workspace_id, channel_id)
        return channel, await self.store.get_schedule(channel.id)

    async def set_schedule(
        self, workspace_id: str, channel_id: str, slots: Sequence[PostingSlot]
    ) -> tuple[Channel, list[PostingSlot]]:
        channel = await owned_channel(self.store, workspace_id, channel_id)
        await self.store.set_schedule(channel.id, slots)
        return channel, await self.store.get_schedule(channel.id)


def _check_credentials(platform: Platform, credentials: Mapping[str, str]) -> None:
    missing = [k for k in REQUIRED_CREDENTIALS[platform] if not credentials.get(k)]
    if missing:
        raise InvalidInput(
            f"{platform.value} credentials need {', '.join(missing)}",
            field=f"credentials.{missing[0]}",
        )


def _next_status(channel: Channel, changes: ChannelChanges) -> ChannelStatus:
    """New credentials re-authorise (active, unless the caller also pauses it); a channel that
    needs re-authorisation is resumed only with new credentials."""
    wanted = changes.status
    if wanted is not None and wanted is ChannelStatus.NEEDS_REAUTH:
        raise InvalidInput("status may be set to active or disabled", field="status")
    if changes.credentials is not None:
        return wanted or ChannelStatus.ACTIVE
    if wanted is ChannelStatus.ACTIVE and channel.status is ChannelStatus.NEEDS_REAUTH:
        raise InvalidInput(
            "the platform refused this channel's credentials: give new ones to resume it",
            field="credentials",
        )
    return wanted or channel.status
