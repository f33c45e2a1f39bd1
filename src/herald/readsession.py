"""The API key a request acts for, as the stores see it: read-your-writes with a read replica.

With ``database.replica_url`` set, reads that may lag (listings, exports, calendars) go to a
read replica, which replays the primary's changes a little late. A key that just wrote must
still see what it wrote, from whichever API node its next request reaches. So:

- the API sets the key here (:func:`act_for`) as soon as it knows the caller;
- every write a store commits while a key is set records the primary's WAL position for that
  key, in the primary itself (where every API node reads it);
- a lag-tolerant read of that key (``Store.lagging_reads``) goes to the replica only if the
  replica has replayed that far; otherwise to the primary.

The key travels as a context variable, like the idempotency claim (:mod:`herald.keyclaim`),
so the stores' signatures stay as they are. Unlike the claim, it is not bound to one task:
a response streamed from a task of its own (a CSV export) reads as its request's key, and a
task that carried it away only records one position too many (a read of the primary).
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["act_for", "current"]

_key: ContextVar[str | None] = ContextVar("herald_read_session", default=None)


def act_for(key_id: str | None) -> None:
    """The running request acts for API key ``key_id`` (None: for no key) from now on."""
    _key.set(key_id)


def current() -> str | None:
    """The API key the running request acts for, if any."""
    return _key.get()
