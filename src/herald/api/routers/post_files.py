"""``/v1/posts/import`` and ``/v1/posts/export``: posts as CSV files (docs/api.md); an import
runs as a job, followed at ``/v1/imports`` (:mod:`herald.api.routers.imports`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Depends, Request, Response
from fastapi.responses import StreamingResponse

from herald.api.deps import CallerDep, ImportsDep, PostsDep, require_csv, workspace_router
from herald.api.problems import responses
from herald.api.routers.posts import QueryDep
from herald.api.schemas.imports import ImportPublic
from herald.service.post_csv import EXPORT_COLUMNS, IMPORT_COLUMNS, export_rows, to_csv
from herald.service.posts import Cursor, PostFilter, PostService

__all__ = ["router"]

router = workspace_router("/v1/posts", tag="posts")
_EXPORT_PAGE = 500


@router.post(
    "/import",
    status_code=202,
    dependencies=[Depends(require_csv)],
    responses=responses(413, 415, 422, 429, 503),
    summary="Import posts from a CSV file, all or nothing, in the background",
    description=(
        "One row per post, a header row first. Answers at once with the import job "
        "(`Location: /v1/imports/{id}`); the job reads and validates the whole file before "
        "anything is stored (every problem reported with its line and column, "
        "`errors: [{line, field, message}]`, and nothing stored), then stores it. "
        "A workspace with `api.import_max_running` imports unfinished gets a 429 (before "
        "the file is read); a server with no room to spool the file, a 503 with Retry-After. "
        f"Columns: {', '.join(IMPORT_COLUMNS)}."
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
    request: Request, caller: CallerDep, imports: ImportsDep, response: Response
) -> ImportPublic:
    job = await imports.submit(caller.workspace_id, request.stream())
    response.headers["Location"] = f"/v1/imports/{job.id}"
    return ImportPublic.of(job)


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
