"""Every write the API makes is tied to its request's idempotency key (herald.keyclaim).

tests/suites/idempotency_contract.py proves, on every store, that each write of its
``WRITES`` marks a claimed key and is refused once the claim is lost. Here: that ``WRITES``
covers every store write the API and its services call (a new write path that is not in it
fails here), and that no write can go around the mark: the SQLite store's reader cannot
write, and a PostgreSQL connection that is not a transaction of the store refuses a named
query that writes.
"""

from __future__ import annotations

import asyncio
import re
import typing
from pathlib import Path

import pytest

import herald
from herald import keyclaim
from herald.errors import StoreError
from herald.keyclaim import KeyClaim
from herald.stores.postgres_conn import Connection, compiled
from herald.stores.sqlite import SQLiteStore
from herald.types import Store
from tests.suites.idempotency_contract import WRITES

PACKAGE = Path(herald.__file__).parent

#: Store methods that change nothing.
READS = {
    "get_workspace",
    "list_workspaces",
    "count_webhook_backlog",  # the metrics of /metrics, read at scrape time
    "count_channels_needing_reauth",
    "api_key_by_prefix",
    "list_api_keys",
    "get_channel",
    "list_channels",
    "get_channel_secret",
    "get_schedule",
    "busy_times",
    "get_post",
    "list_posts",
    "deliveries_of",
    "get_delivery",
    "list_deliveries",
    "list_attempts",
    "count_by_state",
    "list_webhooks",
    "get_webhook_secret",
    "list_webhook_events",
    "get_webhook_event",
    "get_import",
    "list_imports",
    "list_import_posts",
    "running_imports",
    "next_due_at",
    "next_webhook_event_at",
    "sent_since",
    "list_engines",
}
#: The statements on the keys themselves: never under a claim.
KEY_STATEMENTS = {
    "begin_idempotent",
    "finish_idempotent",
    "release_idempotent",
    "purge_idempotency",
}
#: Writes of the engine, the webhook sender and the import runner: each runs as tasks of its
#: own, never for an API request (a task started during one does not hold its claim).
BACKGROUND_WRITES = {
    "claim_due",
    "extend_leases",
    "adopt",
    "recover_expired_leases",
    "beat",
    "recover_dead_engines",
    "deregister_engine",
    "record_platform_event",
    "claim_webhook_events",
    "settle_webhook_event",
    "hold_webhook",
    "disable_webhook",
    "save_import",
    "extend_import_leases",
    "take_over_imports",
    "add_import_posts",
    "release_import",
    "discard_import",
    "purge_imports",
}
#: The modules of those tasks.
BACKGROUND = {"webhook_sender.py", "import_runner.py", "import_work.py"}
OTHER = {"open", "close", "slot_lock", "lagging_reads"}


def store_methods() -> set[str]:
    faces = [c for c in Store.__mro__ if c not in (typing.Protocol, typing.Generic, object)]
    return {
        name
        for face in faces
        for name in vars(face)
        if not name.startswith("_") and callable(getattr(face, name))
    }


def test_every_store_method_is_a_read_a_write_of_the_api_or_of_a_task_or_a_keys():
    kinds = [READS, set(WRITES), KEY_STATEMENTS, BACKGROUND_WRITES, OTHER]
    assert sum(len(k) for k in kinds) == len(set().union(*kinds)), "classified twice"
    assert store_methods() == set().union(*kinds)


def test_the_api_and_its_services_make_no_write_that_is_not_tied_to_the_key():
    """The store methods the request path names (the API, the services but those that run
    as tasks of their own) are reads, key statements, or writes the contract suite checks."""
    used: set[str] = set()
    sources = [*(PACKAGE / "api").rglob("*.py"), *(PACKAGE / "service").glob("*.py")]
    for path in sources:
        if path.name not in BACKGROUND:
            used |= set(re.findall(r"store\.(\w+)", path.read_text()))
    methods = store_methods()
    assert {"add_posts", "add_channels", "get_workspace", "enable_webhook"} <= used
    assert (used & methods) - READS - KEY_STATEMENTS - OTHER <= set(WRITES)
    assert not used & BACKGROUND_WRITES


async def test_a_postgres_connection_for_reads_refuses_a_query_that_writes():
    queries = compiled()
    writes = {name for name, q in queries.items() if q.writes}
    # Changes rows, or locks them to: in a transaction of the store only.
    assert {
        "mark_idempotent",
        "insert_channels",
        "delete_channel",
        "apply_transitions",
        "claim_due",
        "beat",
        "lock_workspace",
        "purge_idempotency",
    } <= writes
    assert not {"deliveries_of", "list_posts", "get_channel", "notify_due"} & writes
    reader = Connection(object())  # refused before anything reaches the driver
    with pytest.raises(TypeError, match="writes"):
        await reader.fetch(queries["claim_due"])


async def test_the_sqlite_reader_cannot_write(tmp_path):
    store = SQLiteStore(tmp_path / "h.db", synchronous="NORMAL")
    await store.open()
    try:
        with pytest.raises(StoreError, match="readonly"):
            await store._reader.run(lambda c: c.execute("DELETE FROM workspaces"))
        assert len(await store.list_workspaces()) == 1
    finally:
        await store.close()


async def test_a_claim_is_held_by_its_task_within_its_block_only():
    claim = KeyClaim("ws_a", "k", "token")
    assert keyclaim.current() is None
    with keyclaim.holding():
        keyclaim.hold(claim)
        assert keyclaim.current() == claim

        async def seen() -> KeyClaim | None:
            return keyclaim.current()

        assert await seen() == claim
        # Another task, started under it, does not hold it.
        assert await asyncio.ensure_future(seen()) is None
        with keyclaim.holding():
            assert keyclaim.current() is None
        assert keyclaim.current() == claim
    assert keyclaim.current() is None
