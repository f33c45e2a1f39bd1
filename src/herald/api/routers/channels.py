"""``/v1/channels``: social accounts of the workspace, and their weekly posting slots."""

from __future__ import annotations

from fastapi import Response

from herald.api.deps import CallerDep, ChannelsDep, JsonBody, PathId, workspace_router
from herald.api.problems import responses
from herald.api.schemas.channels import (
    ChannelCreate,
    ChannelPublic,
    ChannelUpdate,
    SchedulePublic,
    ScheduleUpdate,
)

__all__ = ["router"]

router = workspace_router("/v1/channels", tag="channels")


@router.post(
    "",
    status_code=201,
    dependencies=JsonBody,
    responses=responses(409, 413, 415, 422),
    summary="Connect a channel (its credentials are encrypted at rest, never returned)",
)
async def create_channel(
    body: ChannelCreate, caller: CallerDep, channels: ChannelsDep, response: Response
) -> ChannelPublic:
    channel = await channels.create(caller.workspace_id, body.to_draft())
    response.headers["Location"] = f"/v1/channels/{channel.id}"
    return ChannelPublic.of(channel)


@router.get("", summary="The workspace's channels")
async def list_channels(caller: CallerDep, channels: ChannelsDep) -> list[ChannelPublic]:
    return [ChannelPublic.of(c) for c in await channels.list_channels(caller.workspace_id)]


@router.get("/{channel_id}", responses=responses(404, 422))
async def get_channel(
    channel_id: PathId, caller: CallerDep, channels: ChannelsDep
) -> ChannelPublic:
    return ChannelPublic.of(await channels.get(caller.workspace_id, channel_id))


@router.patch(
    "/{channel_id}",
    dependencies=JsonBody,
    responses=responses(404, 413, 415, 422),
    summary="Rename, move to another zone, pause, or re-authorise with new credentials",
)
async def update_channel(
    channel_id: PathId, body: ChannelUpdate, caller: CallerDep, channels: ChannelsDep
) -> ChannelPublic:
    changed = await channels.update(caller.workspace_id, channel_id, body.to_changes())
    return ChannelPublic.of(changed)


@router.delete(
    "/{channel_id}",
    status_code=204,
    responses=responses(404, 422),
    summary="Delete the channel; its deliveries not yet published are cancelled",
)
async def delete_channel(channel_id: PathId, caller: CallerDep, channels: ChannelsDep) -> Response:
    await channels.delete(caller.workspace_id, channel_id)
    return Response(status_code=204)


@router.get("/{channel_id}/schedule", responses=responses(404, 422))
async def get_schedule(
    channel_id: PathId, caller: CallerDep, channels: ChannelsDep
) -> SchedulePublic:
    channel, slots = await channels.schedule(caller.workspace_id, channel_id)
    return SchedulePublic.of(channel, slots)


@router.put(
    "/{channel_id}/schedule",
    dependencies=JsonBody,
    responses=responses(404, 413, 415, 422),
    summary="Replace the weekly posting slots (wall times in the channel's zone)",
)
async def put_schedule(
    channel_id: PathId, body: ScheduleUpdate, caller: CallerDep, channels: ChannelsDep
) -> SchedulePublic:
    channel, slots = await channels.set_schedule(caller.workspace_id, channel_id, body.to_slots())
    return SchedulePublic.of(channel, slots)
