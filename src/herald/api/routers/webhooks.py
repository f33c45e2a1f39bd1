"""``/v1/webhooks``: where the workspace's events are POSTed, signed (docs/api.md)."""

from __future__ import annotations

from fastapi import Response

from herald.api.deps import CallerDep, JsonBody, PathId, WebhooksDep, workspace_router
from herald.api.problems import responses
from herald.api.schemas.webhooks import WebhookCreate, WebhookCreated, WebhookPublic

__all__ = ["router"]

router = workspace_router("/v1/webhooks", tag="webhooks")


@router.post(
    "",
    status_code=201,
    dependencies=JsonBody,
    responses=responses(413, 415, 422),
    summary="Subscribe a URL to events; the answer is the only time its secret is shown",
)
async def create_webhook(
    body: WebhookCreate, caller: CallerDep, webhooks: WebhooksDep, response: Response
) -> WebhookCreated:
    made = await webhooks.create(caller.workspace_id, body.url, list(body.events))
    response.headers["Location"] = f"/v1/webhooks/{made.webhook.id}"
    return WebhookCreated.issued(made.webhook, made.secret)


@router.get("", summary="The workspace's webhooks")
async def list_webhooks(caller: CallerDep, webhooks: WebhooksDep) -> list[WebhookPublic]:
    return [WebhookPublic.of(w) for w in await webhooks.list_webhooks(caller.workspace_id)]


@router.get("/{webhook_id}", responses=responses(404, 422))
async def get_webhook(
    webhook_id: PathId, caller: CallerDep, webhooks: WebhooksDep
) -> WebhookPublic:
    return WebhookPublic.of(await webhooks.get(caller.workspace_id, webhook_id))


@router.delete(
    "/{webhook_id}",
    status_code=204,
    responses=responses(404, 422),
    summary="Unsubscribe; events not yet sent to it are dropped",
)
async def delete_webhook(webhook_id: PathId, caller: CallerDep, webhooks: WebhooksDep) -> Response:
    await webhooks.delete(caller.workspace_id, webhook_id)
    return Response(status_code=204)
