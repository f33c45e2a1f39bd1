"""Bringing the global directory in line with a region's database: ``herald admin
sync-directory``.

Needed once when a deployment of one region becomes one of several (its workspaces and keys
were made before there was a directory), and after a write the directory missed: a creation
interrupted between the directory and the database leaves the directory a workspace that
does not exist; an erasure interrupted the other way leaves the directory one that no longer
does. The region's database is what is true; the directory is made to agree with it, except
for what a move under way or a creation still in progress may explain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from herald.domain import DEFAULT_WORKSPACE, WorkspaceHome, utcnow
from herald.types import Catalog, Directory

__all__ = ["SyncReport", "sync_directory"]

#: A directory record this young may be a creation still under way (directory first, then the
#: database, a few milliseconds apart): it is never taken for an orphan.
CREATION_GRACE = timedelta(minutes=10)


@dataclass(slots=True)
class SyncReport:
    region: str
    workspaces_added: list[str] = field(default_factory=list)
    keys_added: int = 0
    orphans_removed: list[str] = field(default_factory=list)
    #: Workspaces this database holds that the directory places in another region (a move
    #: interrupted, or a copy restored where it does not belong): a person decides.
    elsewhere: list[str] = field(default_factory=list)
    #: Channels whose region is not this database's: their deliveries are routed to workers
    #: of a region that does not read this database, so nothing publishes them.
    foreign_channels: list[str] = field(default_factory=list)


async def sync_directory(
    store: Catalog,
    directory: Directory,
    region: str,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> SyncReport:
    report = SyncReport(region)
    held: set[str] = set()
    for workspace in await store.list_workspaces():
        if workspace.id == DEFAULT_WORKSPACE:
            continue  # every region's own, and reached by no key
        held.add(workspace.id)
        home = await directory.workspace(workspace.id)
        if home is None:
            await directory.add_workspace(WorkspaceHome(workspace.id, region, workspace.created_at))
            report.workspaces_added.append(workspace.id)
        elif home.region != region:
            report.elsewhere.append(workspace.id)
            continue
        for key in await store.list_api_keys(workspace.id):
            if await directory.key(key.prefix) is not None:
                continue
            found = await store.api_key_by_prefix(key.prefix)
            if found is not None:
                await directory.add_key(found[0], found[1])
                report.keys_added += 1
    cutoff = clock() - CREATION_GRACE
    for home in await directory.workspaces(region):
        orphan = home.workspace_id not in held and home.moving_to is None
        if orphan and home.created_at < cutoff:
            await directory.remove_workspace(home.workspace_id)
            report.orphans_removed.append(home.workspace_id)
    report.foreign_channels = [
        c.id for c in await store.list_channels() if c.region not in (None, region)
    ]
    return report
