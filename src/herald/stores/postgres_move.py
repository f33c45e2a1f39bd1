"""Moving a workspace between two regions' PostgreSQL databases: copy, then delete, never two
live copies.

``herald admin move-workspace`` marks the workspace as moving in the directory (its API
requests are refused from then on), then calls :func:`move_workspace`, which:

1. in one transaction on the database it leaves, locks the workspace's rows as an erasure does
   (the same statements, in the same order as the engine's writes, so neither deadlocks),
   gives up and waits if a delivery is in flight or an import unfinished, and reads them all;
2. writes the copy into the database it goes to, in one transaction, with every delivery that
   could be claimed *held* (``next_attempt_at`` NULL, which no claim picks; its own value kept
   in ``move_holds``), and commits it;
3. deletes the workspace from the database it leaves in the transaction of step 1, and commits:
   until then the locks keep that database's engines off its deliveries;
4. gives the copy's deliveries their ``next_attempt_at`` back and wakes that region's
   dispatchers.

Whichever step a crash interrupts, no delivery can be claimed in both databases: before step 3
commits, the copy is held; after it, the original is gone. Running the move again carries it
on from what it finds: the workspace in both databases (step 3 never committed: the held copy
is discarded and the move starts over), in the new one only (step 4 is finished).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from herald.domain import DEFAULT_WORKSPACE
from herald.errors import ConfigError, Conflict, NotFound, StoreError, WorkspaceBusy
from herald.states import CLAIMABLE, IN_FLIGHT
from herald.stores.postgres import PostgresStore
from herald.stores.postgres_conn import Connection, Database
from herald.stores.sql_common import ERASED_TABLES

__all__ = ["MOVED_TABLES", "MoveReport", "move_workspace", "undo_copy"]

log = logging.getLogger("herald.move")

#: Every table holding a workspace's rows, parents first, with what selects them (``$1``: the
#: workspace's id). tests/integration/test_workspace_move.py checks that every table of the
#: schema is here or in :data:`NOT_MOVED`.
_DELIVERIES = (
    "post_id IN (SELECT id FROM posts WHERE workspace_id = $1)"
    " OR channel_id IN (SELECT id FROM channels WHERE workspace_id = $1)"
)
MOVED_TABLES: Mapping[str, str] = {
    "workspaces": "id = $1",
    "api_keys": "workspace_id = $1",
    "channels": "workspace_id = $1",
    "posting_slots": "channel_id IN (SELECT id FROM channels WHERE workspace_id = $1)",
    "posts": "workspace_id = $1",
    "deliveries": _DELIVERIES,
    "attempts": f"delivery_id IN (SELECT id FROM deliveries WHERE {_DELIVERIES})",
    "webhooks": "workspace_id = $1",
    "webhook_events": "workspace_id = $1"
    " OR webhook_id IN (SELECT id FROM webhooks WHERE workspace_id = $1)",
    "idempotency_keys": "workspace_id = $1",
    "imports": "workspace_id = $1",
    "import_posts": "import_id IN (SELECT id FROM imports WHERE workspace_id = $1)",
}
#: Tables that are not a workspace's: the engines' registry, the migrations' record, and read
#: positions (WAL positions of the server they were taken on: meaningless on another one;
#: those of the workspace's keys are deleted with it).
NOT_MOVED = frozenset({"engines", "schema_migrations", "read_positions", "move_holds"})
#: Columns the database it goes to fills itself (an attempt's id comes from its sequence).
_GENERATED = {"attempts": frozenset({"id"})}
_CLAIMABLE = sorted(state.value for state in CLAIMABLE)
_IN_FLIGHT = sorted(state.value for state in IN_FLIGHT)


@dataclass(frozen=True, slots=True)
class MoveReport:
    workspace_id: str
    rows: Mapping[str, int]  # copied, per table (empty: an earlier run had copied them)
    held: int  # deliveries held during the copy, then released
    resumed: str | None = None  # what an earlier, interrupted run had left


async def move_workspace(
    source: PostgresStore,
    target: PostgresStore,
    workspace_id: str,
    *,
    to: str,
    wait_s: float = 300.0,
    on_busy: Callable[[int], None] | None = None,
) -> MoveReport:
    """Move ``workspace_id``'s rows from ``source`` to ``target``, the database of region
    ``to`` (see the module's text). A workspace with deliveries in flight, webhook events
    being sent or an import unfinished is waited for up to ``wait_s`` (``on_busy`` is told
    how many), then :class:`~herald.errors.WorkspaceBusy`. The caller holds the directory's
    move lock: two runs at once would each take the other's copy for a leftover."""
    if workspace_id == DEFAULT_WORKSPACE:
        raise Conflict("the default workspace is every region's own: it cannot be moved")
    src, dst = source.database, target.database
    await _two_databases(src, dst)
    in_source, in_target = await _has(src, workspace_id), await _has(dst, workspace_id)
    resumed = None
    if in_target and not in_source:
        held = await _release(target, workspace_id)
        log.info("workspace.move_released", extra={"workspace_id": workspace_id, "held": held})
        return MoveReport(workspace_id, {}, held, resumed="copied and deleted: released")
    if not in_source:
        raise NotFound("workspace", workspace_id)
    if in_target:
        await _discard(dst, workspace_id)
        resumed = "a held copy from an interrupted run: discarded, copied again"
    deadline = time.monotonic() + wait_s
    while True:
        copied = await _copy_then_delete(src, dst, workspace_id, to)
        if isinstance(copied, dict):
            break
        if time.monotonic() >= deadline:
            raise WorkspaceBusy(
                f"workspace {workspace_id!r} still has {copied} deliveries in flight, webhook "
                "events being sent or imports unfinished: run the move again once they are done"
            )
        if on_busy is not None:
            on_busy(copied)
        await asyncio.sleep(1.0)
    held = await _release(target, workspace_id)
    log.info(
        "workspace.moved",
        extra={"workspace_id": workspace_id, "rows": sum(copied.values()), "held": held},
    )
    return MoveReport(workspace_id, copied, held, resumed)


async def undo_copy(source: PostgresStore, target: PostgresStore, workspace_id: str) -> bool:
    """Give up a move whose copy was never made live: discard the held copy from ``target``
    while ``source`` still holds the workspace. False if ``source`` no longer does (the move
    is past its point of no return: run it again to finish it)."""
    if not await _has(source.database, workspace_id):
        return False
    await _discard(target.database, workspace_id)
    return True


async def _copy_then_delete(
    src: Database, dst: Database, workspace_id: str, region: str
) -> dict[str, int] | int:
    """Steps 1 to 3; the rows copied per table, or how many things keep the workspace busy."""
    async with src.transaction(marks=False) as conn:
        for name in ("lock_erased_imports", "lock_erased_workspace"):
            await conn.fetch(src.q[name], id=workspace_id)
        for rows in ("channels", "deliveries", "events", "webhooks"):
            await conn.fetch(src.q[f"lock_workspace_{rows}"], id=workspace_id)
        raw = conn.raw
        # Its keys too: a revocation meanwhile waits, then finds no row here and says so,
        # rather than revoking a row about to be deleted while the copy keeps it live.
        await raw.execute(
            "SELECT id FROM api_keys WHERE workspace_id = $1 ORDER BY id FOR UPDATE", workspace_id
        )
        busy = await raw.fetchval(
            f"SELECT (SELECT count(*) FROM deliveries WHERE ({_DELIVERIES})"
            " AND state = ANY($2::text[]))"
            " + (SELECT count(*) FROM imports WHERE workspace_id = $1"
            " AND state IN ('queued', 'validating', 'writing'))"
            f" + (SELECT count(*) FROM webhook_events WHERE ({MOVED_TABLES['webhook_events']})"
            " AND state = 'sending')",
            workspace_id,
            _IN_FLIGHT,
        )
        if busy:
            return int(busy)
        found: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for table, where in MOVED_TABLES.items():
            columns = [c for c in await _columns(raw, table) if c not in _GENERATED.get(table, ())]
            listed = ", ".join(f'"{c}"' for c in columns)
            rows = await raw.fetch(f"SELECT {listed} FROM {table} WHERE {where}", workspace_id)
            found[table] = (columns, [tuple(r) for r in rows])
        holds = [("delivery", *hold) for hold in _hold(*found["deliveries"], _CLAIMABLE)]
        holds += [("event", *hold) for hold in _hold(*found["webhook_events"], ["pending"])]
        _rehome(*found["channels"], region)
        async with dst.transaction(marks=False) as out:
            for table, (columns, records) in found.items():
                if records:
                    await out.raw.copy_records_to_table(
                        table, records=records, columns=columns, schema_name=dst.schema
                    )
            if holds:
                await out.raw.executemany(
                    "INSERT INTO move_holds (kind, id, workspace_id, next_attempt_at)"
                    " VALUES ($1, $2, $3, $4)",
                    [(kind, ident, workspace_id, at) for kind, ident, at in holds],
                )
        # The copy is committed, held. Deleting here, in the transaction that locked the rows,
        # is what makes it the only one: a failure from now on rolls the deletion back and
        # leaves the held copy, which the next run discards.
        await _erase(conn, src, workspace_id)
        return {table: len(records) for table, (_, records) in found.items()}


async def _erase(conn: Connection, db: Database, workspace_id: str) -> None:
    """Delete every row of the workspace with the erasure's own statements, in its order
    (children first; ``herald admin delete-workspace`` runs the same ones), the store's own
    tables beside them, inside the caller's transaction."""
    for name in ("erase_read_positions", "erase_move_holds"):
        await conn.execute(db.q[name], id=workspace_id)
    for table in ERASED_TABLES:
        await conn.execute(db.q[f"erase_{table}"], id=workspace_id)


def _hold(
    columns: list[str], records: list[tuple[Any, ...]], states: list[str]
) -> list[tuple[str, datetime]]:
    """Hold every row of ``records`` (deliveries, webhook events) in ``states`` that a claim
    could pick, in place: its ``next_attempt_at`` set to NULL, which neither the dispatchers'
    claim nor the webhook senders' picks; what it was, by id."""
    at, state, ident = (columns.index(c) for c in ("next_attempt_at", "state", "id"))
    holds = [(r[ident], r[at]) for r in records if r[state] in states and r[at] is not None]
    held = {ident for ident, _ in holds}
    _set(records, at, None, lambda r: r[ident] in held)
    return holds


def _rehome(columns: list[str], records: list[tuple[Any, ...]], region: str) -> None:
    """A channel that names its region names its new one: the new region's dispatchers route
    its deliveries by it, and the old region's workers cannot adopt them."""
    where = columns.index("region")
    _set(records, where, region, lambda r: r[where] is not None)


def _set(
    records: list[tuple[Any, ...]],
    column: int,
    value: object,
    chosen: Callable[[tuple[Any, ...]], bool],
) -> None:
    """``value`` in ``column`` of the ``chosen`` records, in place."""
    for index, record in enumerate(records):
        if chosen(record):
            records[index] = (*record[:column], value, *record[column + 1 :])


async def _release(target: PostgresStore, workspace_id: str) -> int:
    """Step 4: the held deliveries' and events' ``next_attempt_at`` back, the dispatchers
    woken, and the workspace's keys' next reads kept off a replica that has not replayed the
    copy yet (their read positions, as after any write of theirs)."""
    db = target.database
    async with db.transaction(marks=False) as conn:
        await conn.raw.execute(
            "WITH holds AS (DELETE FROM move_holds WHERE workspace_id = $1 AND kind = 'event'"
            " RETURNING id, next_attempt_at)"
            " UPDATE webhook_events e SET next_attempt_at = h.next_attempt_at"
            " FROM holds h WHERE e.id = h.id",
            workspace_id,
        )
        released = await conn.raw.fetch(
            "WITH holds AS (DELETE FROM move_holds WHERE workspace_id = $1"
            " AND kind = 'delivery' RETURNING id, next_attempt_at)"
            " UPDATE deliveries d SET next_attempt_at = h.next_attempt_at"
            " FROM holds h WHERE d.id = h.id RETURNING d.next_attempt_at",
            workspace_id,
        )
        for key in await target.list_api_keys(workspace_id):
            await conn.execute(db.q["record_read_position"], key_id=key.id)
        if released:
            first = min(r["next_attempt_at"] for r in released)
            payload = first.astimezone(UTC).isoformat()
            await conn.fetchval(db.q["notify_due"], channel=target.notify_channel, payload=payload)
    return len(released)


async def _discard(dst: Database, workspace_id: str) -> None:
    """Delete a held copy (a run interrupted before the database it leaves deleted its own)."""
    async with dst.transaction(marks=False) as conn:
        if await conn.raw.fetchval(
            f"SELECT count(*) FROM deliveries WHERE ({_DELIVERIES}) AND state = ANY($2::text[])",
            workspace_id,
            _IN_FLIGHT,
        ):
            # Nothing claims a held copy: a delivery in flight here is a live workspace's.
            raise Conflict(
                f"workspace {workspace_id!r} is live in both regions' databases: see the "
                "runbook before anything is deleted"
            )
        await _erase(conn, dst, workspace_id)


async def _has(db: Database, workspace_id: str) -> bool:
    async with db.connection() as conn:
        found = await conn.raw.fetchval("SELECT 1 FROM workspaces WHERE id = $1", workspace_id)
    return found is not None


async def _two_databases(src: Database, dst: Database) -> None:
    """Two databases at the same schema version: not one reached twice (two regions
    configured on one database would have the move discard the workspace as a leftover)."""
    versions, identities = [], []
    for db in (src, dst):
        async with db.connection() as conn:
            versions.append(await conn.raw.fetchval("SELECT max(version) FROM schema_migrations"))
            identities.append(
                tuple(
                    await conn.raw.fetchrow(
                        "SELECT (SELECT system_identifier FROM pg_control_system()),"
                        " current_database(), current_schema()"
                    )
                )
            )
    if identities[0] == identities[1]:
        raise ConfigError(
            "the two regions' databases are one and the same (the same server, database and "
            "schema): a workspace cannot move between them"
        )
    if versions[0] != versions[1]:
        raise StoreError(
            f"the two regions' databases are at schema versions {versions[0]} and "
            f"{versions[1]}: run `herald migrate` first"
        )


async def _columns(raw: Any, table: str) -> list[str]:
    rows = await raw.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return [r["column_name"] for r in rows]
