"""``/v1/imports``: the workspace's CSV import jobs, their progress and the posts they stored
(a file is sent to ``POST /v1/posts/import``; docs/api.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from herald.api.deps import CallerDep, ImportsDep, PathId, ServicesDep, workspace_router
from herald.api.problems import responses
from herald.api.schemas.imports import (
    ImportedPost,
    ImportedPostPage,
    ImportPage,
    ImportPublic,
    ImportSummary,
)
from herald.errors import InvalidInput
from herald.service.imports import LineCursor
from herald.service.posts import Cursor

__all__ = ["router"]

router = workspace_router("/v1/imports", tag="posts")

CursorQuery = Annotated[str | None, Query(max_length=200, description="From next_cursor")]
LimitQuery = Annotated[int, Query(ge=1, le=1000, description="Items per page")]


def _page_size(services: ServicesDep, limit: int) -> int:
    top = services.settings.api.max_page_size
    if limit > top:
        raise InvalidInput(f"at most {top} items per page", field="limit")
    return limit


@router.get(
    "",
    responses=responses(422),
    summary="The workspace's CSV imports, oldest first, without their problems",
)
async def list_imports(
    *,
    caller: CallerDep,
    imports: ImportsDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> ImportPage:
    after = None if cursor is None else Cursor.decode(cursor)
    jobs, following = await imports.page(
        caller.workspace_id, after=after, limit=_page_size(services, limit)
    )
    return ImportPage(
        items=[ImportSummary.of(j) for j in jobs],
        next_cursor=None if following is None else following.encode(),
    )


@router.get(
    "/{import_id}",
    responses=responses(404, 422),
    summary="An import's state, progress and problems",
)
async def get_import(import_id: PathId, caller: CallerDep, imports: ImportsDep) -> ImportPublic:
    return ImportPublic.of(await imports.get(caller.workspace_id, import_id))


@router.get(
    "/{import_id}/posts",
    responses=responses(404, 422),
    summary="The posts an import stored, in file order, each with its line",
)
async def list_import_posts(
    *,
    import_id: PathId,
    caller: CallerDep,
    imports: ImportsDep,
    services: ServicesDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> ImportedPostPage:
    after = None if cursor is None else LineCursor.decode(cursor)
    found, following = await imports.posts(
        caller.workspace_id, import_id, after=after, limit=_page_size(services, limit)
    )
    return ImportedPostPage(
        items=[ImportedPost.of(line, view) for line, view in found],
        next_cursor=None if following is None else following.encode(),
    )
