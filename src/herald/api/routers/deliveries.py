"""``/v1/deliveries``: one post on one channel; retried or cancelled on its own."""

from __future__ import annotations

from herald.api.deps import CallerDep, DeliveriesDep, PathId, workspace_router
from herald.api.problems import responses
from herald.api.schemas.posts import DeliveryDetail, DeliveryPublic

__all__ = ["router"]

router = workspace_router("/v1/deliveries", tag="deliveries")


@router.get("/{delivery_id}", responses=responses(404, 422))
async def get_delivery(
    delivery_id: PathId, caller: CallerDep, deliveries: DeliveriesDep
) -> DeliveryDetail:
    delivery, attempts = await deliveries.get(caller.workspace_id, delivery_id)
    return DeliveryDetail.with_attempts(delivery, attempts)


@router.post(
    "/{delivery_id}/retry",
    responses=responses(404, 409, 422),
    summary="Publish a failed or unconfirmed delivery again, now, with a fresh retry budget",
    description=(
        "An unconfirmed delivery is looked up on the platform first: if the earlier request "
        "did publish it, it is marked published and nothing is sent again."
    ),
)
async def retry_delivery(
    delivery_id: PathId, caller: CallerDep, deliveries: DeliveriesDep
) -> DeliveryPublic:
    return DeliveryPublic.of(await deliveries.retry(caller.workspace_id, delivery_id))


@router.post(
    "/{delivery_id}/cancel",
    responses=responses(404, 409, 422),
    summary="Cancel one delivery that is not published yet",
)
async def cancel_delivery(
    delivery_id: PathId, caller: CallerDep, deliveries: DeliveriesDep
) -> DeliveryPublic:
    return DeliveryPublic.of(await deliveries.cancel(caller.workspace_id, delivery_id))
