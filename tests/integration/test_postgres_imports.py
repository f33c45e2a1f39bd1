"""CSV imports as background jobs on PostgreSQL: the API tests of tests/api (import and
jobs), run here on a PostgreSQL store, and what only several processes on one database can
show: two processes admitting imports of one workspace at once."""

from __future__ import annotations

import asyncio

import pytest

from herald.domain import ImportJob, Workspace, new_id
from tests.api.conftest import (  # noqa: F401  (fixtures)
    app,
    client,
    notified,
    other,
    secret_key,
    tenant,
)
from tests.api.test_imports import (  # noqa: F401  (the tests, and their small limits)
    settings,
    test_a_channel_deleted_while_the_file_is_stored_fails_the_whole_import,
    test_a_process_that_died_after_storing_everything_has_its_import_finished,
    test_a_stopped_process_leaves_nothing_of_its_import,
    test_a_store_failure_while_writing_fails_the_import_and_removes_it,
    test_a_workspace_runs_one_import_at_a_time_here,
    test_deliveries_per_import_are_limited,
    test_imports_are_listed_oldest_first_page_by_page,
    test_other_workspaces_cannot_see_an_import,
)
from tests.api.test_post_files import (  # noqa: F401
    test_a_file_whose_header_is_wrong_is_refused_at_once,
    test_errors_are_reported_per_line_and_nothing_is_imported,
    test_import_limits,
    test_import_stores_every_row,
    test_malformed_files,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
async def api_store(pg_stores):
    """The API tests' store, on PostgreSQL."""
    return await pg_stores.open()


async def test_two_processes_admit_at_most_max_running_imports_of_a_workspace(pg_stores):
    """The check and the insert are one step under the workspace's row lock: of many jobs
    added at once through several pools (API processes), exactly ``max_running`` get in."""
    stores = [await pg_stores.open() for _ in range(3)]
    ws = Workspace(new_id("ws"), "Acme")
    await stores[0].add_workspace(ws)
    jobs = [ImportJob(new_id("imp"), ws.id, runner=f"r{i}") for i in range(12)]
    admitted = await asyncio.gather(
        *(stores[i % 3].add_import(job, max_running=2) for i, job in enumerate(jobs))
    )
    assert sum(admitted) == 2
    assert len(await stores[1].list_imports(ws.id)) == 2
