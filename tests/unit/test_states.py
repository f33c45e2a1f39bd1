import pytest

from herald.errors import InvalidTransition
from herald.states import (
    CLAIMABLE,
    FINAL,
    DeliveryState,
    allowed_sources,
    check_transition,
)

S = DeliveryState


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
