"""``/v1/webhooks``: where the workspace's events are POSTed, signed; each webhook's events
listed and replayed, a disabled webhook enabled again (docs/api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from herald.api.deps import (
    CallerDep,
    JsonBody,
    PathId,
    ServicesDep,
    WebhooksDep,
    workspace_router,
)
from herald.api.problems import responses
from herald.api.schemas.webhooks import (
    WebhookCreate,
    WebhookCreated,
    WebhookEventPage,
    WebhookEventPublic,
    WebhookPublic,
)
from herald.domain import WebhookEventState
from herald.errors import InvalidInput
from herald.service.subscriptions import EventCursor

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


@router.post(
    "/{webhook_id}/enable",
    responses=responses(404, 422),
    summary="Switch a disabled webhook back on; the events kept meanwhile go out",
    description=(
        "Also clears the failure record of an enabled webhook that is failing (its next "
        "event is tried at once). Events given up before (status failed) are replayed one "
        "by one."
    ),
)
async def enable_webhook(
    webhook_id: PathId, caller: CallerDep, webhooks: WebhooksDep
) -> WebhookPublic:
    return WebhookPublic.of(await webhooks.enable(caller.workspace_id, webhook_id))


@router.get(
    "/{webhook_id}/events",
    responses=responses(404, 422),
    summary="The webhook's events, oldest first: sent, failed, pending",
)
async def list_webhook_events(
    *,
    webhook_id: PathId,
    caller: CallerDep,
    webhooks: WebhooksDep,
    services: ServicesDep,
    status: Annotated[WebhookEventState | None, Query(description="Only events in it")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="From next_cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Events per page")] = 50,
) -> WebhookEventPage:
    top = services.settings.api.max_page_size
    if limit > top:
        raise InvalidInput(f"at most {top} events per page", field="limit")
    after = None if cursor is None else EventCursor.decode(cursor)
    records, following = await webhooks.events(
        caller.workspace_id, webhook_id, state=status, after=after, limit=limit
    )
    return WebhookEventPage(
        items=[WebhookEventPublic.of(r) for r in records],
        next_cursor=None if following is None else following.encode(),
    )


@router.post(
    "/{webhook_id}/events/{event_id}/replay",
    responses=responses(404, 409, 422),
    summary="Send a finished (sent or failed) event again, with every attempt to use again",
    description=(
        "The event keeps its id (receivers that dedupe by Herald-Event-Id see a repeat). "
        "409 while it is pending or sending: it is on its way already."
    ),
)
async def replay_webhook_event(
    webhook_id: PathId, event_id: PathId, caller: CallerDep, webhooks: WebhooksDep
) -> WebhookEventPublic:
    record = await webhooks.replay(caller.workspace_id, webhook_id, event_id)
    return WebhookEventPublic.of(record)
