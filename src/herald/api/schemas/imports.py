"""CSV import jobs and the posts they stored."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from herald.api.schemas.common import Public
from herald.api.schemas.posts import PostPublic
from herald.domain import ImportJob, ImportState
from herald.service.posts import PostView

__all__ = [
    "ImportPage",
    "ImportProblem",
    "ImportProgress",
    "ImportPublic",
    "ImportSummary",
    "ImportedPost",
    "ImportedPostPage",
]


class ImportProblem(BaseModel):
    line: int | None = Field(description="The file line where the row starts (header: 1)")
    field: str | None = Field(description="The column, or body for the file as a whole")
    message: str


class ImportProgress(BaseModel):
    rows_total: int | None = Field(description="Rows in the file, once it was read to its end")
    rows_validated: int
    posts_written: int = Field(description="Posts stored so far (a failed import stores none)")
    deliveries: int = Field(description="Deliveries (rows x their channels) of the rows read")


class ImportSummary(Public):
    """An import as listed: everything but its problems (``GET /v1/imports/{id}`` has them)."""

    id: str
    state: ImportState = Field(
        description="queued, validating, writing, then succeeded or failed (nothing stored)"
    )
    progress: ImportProgress
    detail: str | None = Field(description="Why it failed")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    posts_url: str = Field(description="The posts it stored, page by page, with their lines")

    @classmethod
    def fields_of(cls, job: ImportJob) -> dict[str, object]:
        return {
            "id": job.id,
            "state": job.state,
            "progress": ImportProgress(
                rows_total=job.rows_total,
                rows_validated=job.rows_validated,
                posts_written=job.posts_written,
                deliveries=job.deliveries,
            ),
            "detail": job.detail,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "finished_at": job.finished_at,
            "posts_url": f"/v1/imports/{job.id}/posts",
        }


class ImportPublic(ImportSummary):
    errors: list[ImportProblem] = Field(
        description="The file's problems, each with its line: the first 1,000 at most, each "
        "message cut at 300 characters, 64 KiB of them in all"
    )

    @classmethod
    def fields_of(cls, job: ImportJob) -> dict[str, object]:
        errors = [ImportProblem(line=p.line, field=p.field, message=p.message) for p in job.errors]
        return {**super().fields_of(job), "errors": errors}


class ImportPage(BaseModel):
    items: list[ImportSummary] = Field(description="Without their problems: read each import")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: done")


class ImportedPost(BaseModel):
    line: int = Field(description="The file line where the post's row starts")
    post: PostPublic

    @classmethod
    def of(cls, line: int, view: PostView) -> ImportedPost:
        return cls(line=line, post=PostPublic.of(view))


class ImportedPostPage(BaseModel):
    items: list[ImportedPost]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: done")
