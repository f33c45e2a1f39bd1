"""``/v1/posts``: create, list (filters, cursor pages), read, cancel, reschedule."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Response

from herald.api.deps import (
    CallerDep,
    DeliveriesDep,
    JsonBody,
    PathId,
    PostsDep,
    ServicesDep,
    workspace_router,
)
from herald.api.problems import responses
from herald.api.schemas.common import ID_PATTERN, IsoDateTime
from herald.api.schemas.posts import (
    PostCreate,
    PostDetail,
    PostPage,
    PostPublic,
    PostReschedule,
)
from herald.errors import InvalidInput, ScheduleError
from herald.service.posts import Cursor, PostFilter
from herald.states import DeliveryState
from herald.timing import to_utc

__all__ = ["PostQuery", "router"]

router = workspace_router("/v1/posts", tag="posts")


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return to_utc(value)
    except (ScheduleError, OverflowError):
        raise InvalidInput("give a time with its UTC offset", field=name) from None


class PostQuery:
    """The listing filters, shared by ``GET /v1/posts`` and the CSV export."""

    def __init__(
        self,
        status: Annotated[
            DeliveryState | None,
            Query(description="Posts with at least one delivery in this state"),
        ] = None,
        channel_id: Annotated[
            str | None,
            Query(max_length=64, pattern=ID_PATTERN, description="Posts with a delivery on it"),
        ] = None,
        scheduled_from: Annotated[
            IsoDateTime | None, Query(description="A delivery due at or after this instant")
        ] = None,
        scheduled_to: Annotated[
            IsoDateTime | None, Query(description="A delivery due before this instant")
        ] = None,
    ) -> None:
        self.where = PostFilter(
            state=status,
            channel_id=channel_id,
            due_from=_aware(scheduled_from, "scheduled_from"),
            due_to=_aware(scheduled_to, "scheduled_to"),
        )


QueryDep = Annotated[PostQuery, Depends()]


@router.post(
    "",
    status_code=201,
    dependencies=JsonBody,
    responses=responses(404, 413, 415, 422),
    summary="Schedule a post on one or more channels",
    description=(
        "Validated for every target platform before anything is stored. Answers the post "
        "with one delivery per channel, each with its due time in UTC."
    ),
)
async def create_post(
    body: PostCreate, caller: CallerDep, posts: PostsDep, response: Response
) -> PostPublic:
    view = await posts.create(caller.workspace_id, body.to_draft())
    response.headers["Location"] = f"/v1/posts/{view.post.id}"
    return PostPublic.of(view)


@router.get("", responses=responses(422), summary="The workspace's posts, oldest first")
async def list_posts(
    *,
    caller: CallerDep,
    posts: PostsDep,
    services: ServicesDep,
    query: QueryDep,
    cursor: Annotated[str | None, Query(max_length=200, description="From next_cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Posts per page")] = 50,
) -> PostPage:
    top = services.settings.api.max_page_size
    if limit > top:
        raise InvalidInput(f"at most {top} posts per page", field="limit")
    after = None if cursor is None else Cursor.decode(cursor)
    views, following = await posts.page(caller.workspace_id, query.where, after=after, limit=limit)
    return PostPage(
        items=[PostPublic.of(v) for v in views],
        next_cursor=None if following is None else following.encode(),
    )


@router.get(
    "/{post_id}",
    responses=responses(404, 422),
    summary="The post with every delivery and each delivery's attempts",
)
async def get_post(post_id: PathId, caller: CallerDep, posts: PostsDep) -> PostDetail:
    return PostDetail.of(await posts.get(caller.workspace_id, post_id))


@router.post(
    "/{post_id}/cancel",
    responses=responses(404, 409, 422),
    summary="Cancel every delivery of the post that is not published yet",
)
async def cancel_post(post_id: PathId, caller: CallerDep, deliveries: DeliveriesDep) -> PostPublic:
    return PostPublic.of(await deliveries.cancel_post(caller.workspace_id, post_id))


@router.post(
    "/{post_id}/reschedule",
    dependencies=JsonBody,
    responses=responses(404, 409, 413, 415, 422),
    summary="Move the post's waiting (scheduled, retry_wait) deliveries to a new time",
)
async def reschedule_post(
    post_id: PathId, body: PostReschedule, caller: CallerDep, deliveries: DeliveriesDep
) -> PostPublic:
    view = await deliveries.reschedule_post(caller.workspace_id, post_id, body.to_when())
    return PostPublic.of(view)
