"""``/v1/posts/import`` and ``/v1/posts/export``: posts as CSV files (docs/api.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Depends, Request
from fastapi.responses import StreamingResponse

from herald.api.deps import CallerDep, PostsDep, ServicesDep, require_csv, workspace_router
from herald.api.problems import responses
from herald.api.routers.posts import QueryDep
from herald.api.schemas.posts import ImportedPost, ImportPublic, PostPublic
from herald.service import post_csv
from herald.service.post_csv import EXPORT_COLUMNS, IMPORT_COLUMNS, export_rows, to_csv
from herald.service.posts import Cursor, PostFilter, PostService

__all__ = ["router"]

router = workspace_router("/v1/posts", tag="posts")
_EXPORT_PAGE = 500


@router.post(
    "/import",
    status_code=201,
    dependencies=[Depends(require_csv)],
    responses=responses(404, 413, 415, 422),
    summary="Import posts from a CSV file, all or nothing",
    description=(
        "One row per post, a header row first. The whole file is validated before anything "
        "is stored; every problem is reported with its line and column "
        f"(`errors: [{{line, field, message}}]`). Columns: {', '.join(IMPORT_COLUMNS)}."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": (
                        "channel_ids,text,scheduled_at\n"
                        "ch_019c3f2a8b1e0a1b2c3d4e5f6a7b8c9d,"
                        "Fresh croissants at 7!,2030-03-01T06:00:00Z\n"
                    ),
                }
            },
        }
    },
)
async def import_posts(
    request: Request, caller: CallerDep, posts: PostsDep, services: ServicesDep
) -> ImportPublic:
    data = await request.body()
    stored = await post_csv.import_posts(
        posts, caller.workspace_id, data, max_rows=services.settings.api.import_max_rows
    )
    return ImportPublic(
        imported=len(stored),
        posts=[ImportedPost(line=line, post=PostPublic.of(view)) for line, view in stored],
    )


@router.get(
    "/export",
    responses={
        **responses(422),
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"},
    },
    response_class=StreamingResponse,
    summary="The workspace's posts as CSV, one row per delivery with its state",
    description=f"Columns: {', '.join(EXPORT_COLUMNS)}. Same filters as the listing.",
)
async def export_posts(caller: CallerDep, posts: PostsDep, query: QueryDep) -> StreamingResponse:
    chunks = _export(posts, caller.workspace_id, query.where)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="posts.csv"'},
    )


async def _export(posts: PostService, workspace_id: str, where: PostFilter) -> AsyncIterator[str]:
    yield to_csv([list(EXPORT_COLUMNS)])
    after: Cursor | None = None
    while True:
        views, after = await posts.page(workspace_id, where, after=after, limit=_EXPORT_PAGE)
        yield to_csv(export_rows(views))
        if after is None:
            return
