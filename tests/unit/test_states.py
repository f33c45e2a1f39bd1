"""The state machine (herald.states), and every store following it: the guarded writes of all
three stores give the same transition table, and no SQL keeps a list of states of its own."""

import re
from pathlib import Path

import pytest

import herald.stores
from herald.errors import InvalidTransition
from herald.states import (
    CANCELLABLE,
    CLAIMABLE,
    DROPPED,
    FINAL,
    IN_FLIGHT,
    UNRESOLVED,
    DeliveryState,
    allowed_sources,
    check_transition,
)
from herald.stores.queries import load_queries, state_list
from tests.suites.transition_table import TransitionTable

S = DeliveryState
STORES = Path(herald.stores.__file__).parent
DIALECTS = ("sqlite", "postgres")
#: A parenthesised list of SQL string literals: ``('a', 'b')``.
LITERAL_LIST = re.compile(r"\(\s*('[^']*'(?:\s*,\s*'[^']*')*)\s*\)")
PLACEHOLDER = re.compile(
    r"\{(CLAIMABLE|CANCELLABLE|IN_FLIGHT|UNRESOLVED|DROPPED|TRANSITIONS|SOURCES)\}"
)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.SCHEDULED, S.CLAIMED),
        (S.CLAIMED, S.PUBLISHING),
        (S.PUBLISHING, S.PUBLISHED),
        (S.PUBLISHING, S.RETRY_WAIT),
        (S.PUBLISHING, S.FAILED),
        (S.PUBLISHING, S.UNCONFIRMED),
        (S.RETRY_WAIT, S.CLAIMED),
        (S.UNCONFIRMED, S.CLAIMED),
        (S.CLAIMED, S.PUBLISHED),  # a look-up found the post
        (S.CLAIMED, S.SCHEDULED),  # released unsent
        (S.SCHEDULED, S.EXPIRED),
        (S.SCHEDULED, S.CANCELLED),
        (S.FAILED, S.SCHEDULED),  # explicit user retry
        (S.UNCONFIRMED, S.SCHEDULED),  # explicit user retry
    ],
)
def test_allowed_transitions(source, target):
    check_transition(source, target)
    assert source in allowed_sources(target)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (S.SCHEDULED, S.PUBLISHING),  # must be claimed first
        (S.SCHEDULED, S.PUBLISHED),
        (S.RETRY_WAIT, S.PUBLISHING),
        (S.UNCONFIRMED, S.PUBLISHING),  # never resent without a claim and a look-up
        (S.PUBLISHING, S.SCHEDULED),  # a request may be on the wire: never silently requeued
        (S.PUBLISHING, S.CLAIMED),
        (S.PUBLISHING, S.CANCELLED),
        (S.PUBLISHED, S.SCHEDULED),
        (S.EXPIRED, S.SCHEDULED),
        (S.CANCELLED, S.SCHEDULED),
    ],
)
def test_forbidden_transitions(source, target):
    with pytest.raises(InvalidTransition):
        check_transition(source, target)
    assert source not in allowed_sources(target)


def test_final_states_have_no_way_out_but_user_retry():
    for state in FINAL:
        targets = {t for t in S if state in allowed_sources(t)}
        assert targets <= {S.SCHEDULED}
        if state is not S.FAILED:
            assert targets == set()


def test_publishing_is_only_left_for_an_outcome():
    targets = {t for t in S if S.PUBLISHING in allowed_sources(t)}
    assert targets == {S.PUBLISHED, S.RETRY_WAIT, S.FAILED, S.UNCONFIRMED}


def test_claimable_states():
    assert {S.SCHEDULED, S.RETRY_WAIT, S.UNCONFIRMED} == CLAIMABLE
    for state in CLAIMABLE:
        check_transition(state, S.CLAIMED)


def test_the_state_changes_stores_make_by_themselves_are_in_the_table():
    # Claims (claim_due), expiry while claiming, cancelling a deleted channel's deliveries and
    # recovering expired leases write their target as a literal, from these sources.
    assert CLAIMABLE.issubset(allowed_sources(S.CLAIMED))
    assert CLAIMABLE.issubset(allowed_sources(S.EXPIRED))
    assert CANCELLABLE.issubset(allowed_sources(S.CANCELLED))
    assert IN_FLIGHT.issubset(allowed_sources(S.UNCONFIRMED))
    assert S.CLAIMED in allowed_sources(S.SCHEDULED) & allowed_sources(S.RETRY_WAIT)
    assert DROPPED.issubset(FINAL)
    assert IN_FLIGHT.issubset(UNRESOLVED)


@pytest.mark.parametrize("path", sorted((STORES / "sql").glob("*.sql")), ids=lambda p: p.name)
def test_no_named_query_keeps_a_list_of_states_of_its_own(path):
    code = "\n".join(line.split("--")[0] for line in path.read_text().splitlines())
    states = {f"'{s.value}'" for s in S}
    lists = [m.group(1) for m in LITERAL_LIST.finditer(code)]
    assert not [found for found in lists if states & set(re.split(r"\s*,\s*", found))]
    assert PLACEHOLDER.search(code)  # the lists are there, as placeholders


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_named_queries_get_their_lists_from_the_state_machine(dialect):
    queries = load_queries(dialect)
    assert f"state IN ({state_list(CLAIMABLE)})" in queries["next_due_at"]
    assert f"state IN ({state_list(IN_FLIGHT)})" in queries["extend_leases"]
    assert f"state IN ({state_list(UNRESOLVED)})" in queries["sent_since"]
    assert f"state NOT IN ({state_list(DROPPED)})" in queries["busy_times"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_declared_schema_lists_the_states_of_the_state_machine(dialect):
    # Migrations cannot take placeholders: the schema they must yield (test_migrations) is
    # checked here instead. Same order too: SQLite uses a partial index only for a query
    # that repeats the index's condition as written, and the queries write state_list().
    schema = (STORES / "schema" / f"{dialect}.sql").read_text()
    every = schema.split("CREATE TABLE deliveries", 1)[1].split(");", 1)[0]
    (checked,) = re.findall(r"CHECK \(state IN \(([^)]*)\)\)", every)
    assert re.sub(r"\s+", " ", checked).strip() == state_list(S)
    for index, states in (
        ("deliveries_due", CLAIMABLE),
        ("deliveries_stale", CLAIMABLE),
        ("deliveries_leased", IN_FLIGHT),
    ):
        where = schema.split(f"CREATE INDEX {index} ", 1)[1].split(";", 1)[0]
        assert f"WHERE state IN ({state_list(states)})" in where, index


class TestEveryStoreFollowsTheStateMachine(TransitionTable):
    """The transition table on the memory and SQLite stores (tests/suites/transition_table.py)."""
