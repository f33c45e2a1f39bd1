"""``/v1/api-keys`` and ``/v1/workspace``: the caller's workspace (read, deleted) and its keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from herald.api.deps import CallerDep, JsonBody, KeysDep, PathId, ServicesDep, workspace_router
from herald.api.problems import responses
from herald.api.schemas.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, WorkspacePublic

__all__ = ["router"]

router = workspace_router(tag="workspace")


@router.get("/v1/workspace", summary="The workspace the API key acts for")
async def get_workspace(caller: CallerDep, services: ServicesDep) -> WorkspacePublic:
    return WorkspacePublic.of(await services.store.get_workspace(caller.workspace_id))


@router.delete(
    "/v1/workspace",
    status_code=204,
    responses=responses(404, 409, 422),
    summary="Delete the workspace and erase all of its data; its keys stop working at once",
    description=(
        "Erases, in one transaction, the workspace's channels (and their credentials), posts, "
        "deliveries and their attempts, posting slots, webhooks and their events, and API "
        "keys. It cannot be undone: `confirm` must repeat the workspace's id. A publish "
        "request on the wire at that instant may still reach the platform; its outcome is not "
        "recorded."
    ),
)
async def delete_workspace(
    confirm: Annotated[str, Query(max_length=64, description="The workspace's id, repeated")],
    caller: CallerDep,
    keys: KeysDep,
) -> Response:
    await keys.delete_workspace(caller.workspace_id, confirm=confirm)
    return Response(status_code=204)


@router.get("/v1/api-keys", summary="The workspace's API keys (never their secrets)")
async def list_keys(caller: CallerDep, keys: KeysDep) -> list[ApiKeyPublic]:
    return [ApiKeyPublic.of(k) for k in await keys.list_keys(caller.workspace_id)]


@router.post(
    "/v1/api-keys",
    status_code=201,
    dependencies=JsonBody,
    responses=responses(413, 415, 422),
    summary="Make a new key; the answer is the only time its secret is shown",
)
async def create_key(
    body: ApiKeyCreate, caller: CallerDep, keys: KeysDep, response: Response
) -> ApiKeyCreated:
    issued = await keys.issue_key(caller.workspace_id, body.name)
    response.headers["Location"] = f"/v1/api-keys/{issued.key.id}"
    return ApiKeyCreated.issued(issued.key, issued.token)


@router.get("/v1/api-keys/{key_id}", responses=responses(404, 422))
async def get_key(key_id: PathId, caller: CallerDep, keys: KeysDep) -> ApiKeyPublic:
    return ApiKeyPublic.of(await keys.get_key(caller.workspace_id, key_id))


@router.delete(
    "/v1/api-keys/{key_id}",
    status_code=204,
    responses=responses(404, 422),
    summary="Revoke a key (at once; it stays listed with revoked_at)",
)
async def revoke_key(key_id: PathId, caller: CallerDep, keys: KeysDep) -> Response:
    await keys.revoke_key(caller.workspace_id, key_id)
    return Response(status_code=204)
