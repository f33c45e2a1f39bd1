"""Every guarded state change from every state, on every store: one table, one truth.

For each :class:`~herald.states.DeliveryState` as the source (claimed and publishing twice:
fresh, and with a history of look-ups or retries) and each kind of
:class:`~herald.domain.Transition` that the engine (``herald.engine.policy``) and the user's
actions (``herald.service.deliveries``) write, a delivery is put in that state by claims and
the transitions that lead there, then the kind is applied to it: the engine's kinds with the
token of the delivery's latest claim and with a token never issued, the user's without one.

Each cell records whether the change applied, the delivery's fields after it, whether the
delivery still holds its claim and how many attempts the change recorded. The expected table
comes from the one place the rules live: :mod:`herald.states` (may the target be entered from
the source? does the token still hold the claim?) and :func:`herald.stores.contract.applied`
(what a change does to the fields), which the memory store applies as it is and the SQL of
the other two must agree with. So each tier checks its stores against the same truth: memory
and SQLite in tests/unit, PostgreSQL in tests/integration. What that truth says (a user retry
resets the retry budget, a send renews the look-up window...) is pinned by the behavioural
tests of the store contract (tests/suites/store_contract.py), not here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from herald.domain import Attempt, Delivery, Transition, utcnow
from herald.states import IN_FLIGHT, DeliveryState, allowed_sources
from herald.stores.contract import applied
from herald.testing import channel, new_post

S = DeliveryState
HOUR = timedelta(hours=1)
OTHER_TOKEN = "a-token-no-store-issued"

#: A kind of transition, built for a delivery (as it is before) with a token and a clock.
Kind = Callable[[Delivery, str | None, datetime], Transition]


def _attempt(d: Delivery, outcome: str, now: datetime) -> Attempt:
    return Attempt(d.id, d.attempts + 1, now, now, outcome, None if outcome == "published" else "x")


# fmt: off
#: What the engine writes, each with the claim's token (herald.engine.policy).
ENGINE: dict[str, Kind] = {
    "publishing": lambda d, tok, now: Transition(
        d.id, S.PUBLISHING, claim_token=tok, lease_until=now + HOUR, sent=True,
        check_first=False, check_since=now,
    ),
    "published": lambda d, tok, now: Transition(
        d.id, S.PUBLISHED, claim_token=tok, external_id="post-1", published_at=now,
        check_first=False, attempt=_attempt(d, "published", now), event="delivery.published",
    ),
    "reconciled": lambda d, tok, now: Transition(
        d.id, S.PUBLISHED, claim_token=tok, external_id="post-2", reconciled=True,
        check_first=False, published_at=now, attempt=_attempt(d, "found", now),
    ),
    "retry": lambda d, tok, now: Transition(
        d.id, S.RETRY_WAIT, claim_token=tok, next_attempt_at=now + HOUR, retry_spent=True,
        error="503", attempt=_attempt(d, "transient", now),
    ),
    "rate_limited": lambda d, tok, now: Transition(
        d.id, S.RETRY_WAIT, claim_token=tok, next_attempt_at=now + HOUR, error="429",
        attempt=_attempt(d, "rate_limited", now),
    ),
    "failed": lambda d, tok, now: Transition(
        d.id, S.FAILED, claim_token=tok, error="refused", attempt=_attempt(d, "rejected", now)
    ),
    "unconfirmed": lambda d, tok, now: Transition(
        d.id, S.UNCONFIRMED, claim_token=tok, check_first=True, next_attempt_at=now + HOUR,
        error="timeout", attempt=_attempt(d, "unknown", now),
    ),
    "check_failed": lambda d, tok, now: Transition(
        d.id, S.UNCONFIRMED, claim_token=tok, check_first=True, check_failed=True,
        next_attempt_at=now + HOUR, error="no answer", attempt=_attempt(d, "check_failed", now),
    ),
    "released": lambda d, tok, now: Transition(
        d.id, S.SCHEDULED, claim_token=tok, next_attempt_at=now, check_first=False
    ),
    "released_after_send": lambda d, tok, now: Transition(
        d.id, S.RETRY_WAIT, claim_token=tok, next_attempt_at=now, check_first=False
    ),
    "released_owing_check": lambda d, tok, now: Transition(
        d.id, S.UNCONFIRMED, claim_token=tok, next_attempt_at=now, check_first=True
    ),
    "expired": lambda d, tok, now: Transition(
        d.id, S.EXPIRED, claim_token=tok, check_first=False, error="too late"
    ),
}

#: What the user's actions write, without a token (herald.service.deliveries).
USER: dict[str, Kind] = {
    "cancel": lambda d, _tok, _now: Transition(
        d.id, S.CANCELLED, error="cancelled by the user", unheld=True
    ),
    "reschedule": lambda d, _tok, now: Transition(
        d.id, S.SCHEDULED, due_at=now + 2 * HOUR, next_attempt_at=now + 2 * HOUR,
        error=d.last_error, unclaimed=True, unheld=True,
    ),
    "user_retry": lambda d, _tok, now: Transition(
        d.id, S.SCHEDULED, next_attempt_at=now, due_at=now, reset_retries=True, unclaimed=True,
        unheld=True,
    ),
}

#: Only to build a history: outcomes that leave a delivery due again at once (in the past).
HISTORY: dict[str, Kind] = {
    "unknown_due": lambda d, tok, now: Transition(
        d.id, S.UNCONFIRMED, claim_token=tok, check_first=True, next_attempt_at=now - 2 * HOUR,
        error="timeout", attempt=_attempt(d, "unknown", now),
    ),
    "check_failed_due": lambda d, tok, now: Transition(
        d.id, S.UNCONFIRMED, claim_token=tok, check_first=True, check_failed=True,
        next_attempt_at=now - 2 * HOUR, error="no answer", attempt=_attempt(d, "check_failed", now),
    ),
    "retry_due": lambda d, tok, now: Transition(
        d.id, S.RETRY_WAIT, claim_token=tok, next_attempt_at=now - 2 * HOUR, retry_spent=True,
        error="503", attempt=_attempt(d, "transient", now),
    ),
}
# fmt: on

CLAIM = "claim"
#: How a claimed delivery is brought to each source: the kinds applied to it, CLAIM for
#: another claim (the delivery's token is then that claim's).
PATHS: dict[str, tuple[DeliveryState, tuple[str, ...]]] = {
    "scheduled": (S.SCHEDULED, ("released",)),
    "claimed": (S.CLAIMED, ()),
    "claimed for a look-up": (
        S.CLAIMED,
        ("publishing", "unknown_due", CLAIM, "check_failed_due", CLAIM),
    ),
    "publishing": (S.PUBLISHING, ("publishing",)),
    "publishing again": (S.PUBLISHING, ("publishing", "retry_due", CLAIM, "publishing")),
    "published": (S.PUBLISHED, ("publishing", "published")),
    "retry_wait": (S.RETRY_WAIT, ("publishing", "retry")),
    "failed": (S.FAILED, ("publishing", "failed")),
    "expired": (S.EXPIRED, ("expired",)),
    "unconfirmed": (S.UNCONFIRMED, ("publishing", "unconfirmed")),
    "cancelled": (S.CANCELLED, ("cancel",)),
}
KINDS = ENGINE | USER | HISTORY


@dataclass(frozen=True)
class Case:
    path: str  # how the delivery came to its source state (PATHS)
    kind: str
    token: str | None  # "own": its latest claim's; "other": never issued; None: no token

    @property
    def source(self) -> DeliveryState:
        return PATHS[self.path][0]


@dataclass(frozen=True)
class Cell:
    applied: bool
    holds_claim: bool
    attempts_recorded: int
    delivery: Delivery  # updated_at left out: each store stamps its own clock

    def describe(self) -> str:
        d = self.delivery
        return (
            f"applied={self.applied} state={d.state.value} claim={self.holds_claim} "
            f"attempts+={self.attempts_recorded} {d}"
        )


def cases() -> list[Case]:
    engine = [Case(p, k, t) for p in PATHS for k in ENGINE for t in ("own", "other")]
    return engine + [Case(p, k, None) for p in PATHS for k in USER]


def expected(case: Case, before: Delivery, t: Transition, now: datetime) -> Cell:
    """The cell as herald.states and herald.stores.contract say it must be."""
    held = case.source in IN_FLIGHT  # only claimed and publishing keep the claim's token
    ok = (
        case.source in allowed_sources(t.target)
        and (case.token is None or (held and case.token == "own"))
        and not (t.unclaimed and held)
        and not (t.unheld and before.held)  # no path leads to a held delivery: import_contract
    )
    after = applied(before, t, now) if ok else before
    return Cell(
        applied=ok,
        holds_claim=held and (not ok or t.target in IN_FLIGHT),
        attempts_recorded=1 if ok and t.attempt is not None else 0,
        delivery=replace(after, updated_at=None),
    )


class TransitionTable:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def test_every_transition_from_every_state(self, store):
        now = utcnow()
        table = cases()
        tokens = await _deliveries_in_their_sources(store, table, now)
        ids = list(tokens)
        before = {i: await store.get_delivery(i) for i in ids}
        attempts_before = {i: len(await store.list_attempts(i)) for i in ids}
        transitions = [
            KINDS[c.kind](before[i], _token(c, tokens[i]), now)
            for c, i in zip(table, ids, strict=True)
        ]
        done = await store.apply(transitions)

        wrong, applies = [], {s: set() for s in S}
        for case, i, t, ok in zip(table, ids, transitions, done, strict=True):
            got = Cell(
                applied=ok,
                holds_claim=await store.extend_leases([tokens[i]], now + HOUR) == 1,
                attempts_recorded=len(await store.list_attempts(i)) - attempts_before[i],
                delivery=replace(await store.get_delivery(i), updated_at=None),
            )
            want = expected(case, before[i], t, now)
            applies[case.source].add(want.applied)
            if got != want:
                wrong.append(
                    f"{case.path} + {case.kind} (token: {case.token}):\n"
                    f"  want {want.describe()}\n  got  {got.describe()}"
                )
        assert not wrong, f"{len(wrong)} of {len(table)} cells differ:\n" + "\n".join(wrong)
        # Not a table of refusals: from every state with a way out, some changes apply.
        for source, outcomes in applies.items():
            exits = any(source in allowed_sources(target) for target in S)
            assert outcomes == ({True, False} if exits else {False}), source


def _token(case: Case, own: str) -> str | None:
    return {"own": own, "other": OTHER_TOKEN, None: None}[case.token]


async def _deliveries_in_their_sources(store, table: list[Case], now: datetime) -> dict[str, str]:
    """One delivery per case, claimed on its own (so with a token of its own) and brought to
    the case's source state; return delivery id -> its latest claim's token, in case order."""
    fb = channel()
    await store.add_channels([fb])
    posts = [new_post([fb], due_at=now - HOUR + timedelta(seconds=n)) for n in range(len(table))]
    await store.add_posts(posts)
    tokens: dict[str, str] = {}
    await _claim(store, tokens, len(table), now)  # in due order: the n-th is the n-th case's
    ids = list(tokens)
    assert ids == [p.targets[0][0] for p in posts]
    for step in range(max(len(steps) for _, steps in PATHS.values())):
        todo = [(PATHS[c.path][1][step:], i) for c, i in zip(table, ids, strict=True)]
        writes = [
            KINDS[steps[0]](await store.get_delivery(i), tokens[i], now)
            for steps, i in todo
            if steps and steps[0] != CLAIM
        ]
        assert await store.apply(writes) == [True] * len(writes)
        again = {i for steps, i in todo if steps and steps[0] == CLAIM}
        # Only these are due (HISTORY's outcomes are due before anything else): each claim
        # takes one of them.
        assert set(await _claim(store, tokens, len(again), now)) == again
    for case, i in zip(table, ids, strict=True):
        assert (await store.get_delivery(i)).state is case.source, (case, i)
    return tokens


async def _claim(store, tokens: dict[str, str], count: int, now: datetime) -> list[str]:
    """Claim ``count`` deliveries one by one; note each one's token; return their ids."""
    claimed = []
    for _ in range(count):
        batch = await store.claim_due(
            now=now, limit=1, lease_until=now + HOUR, expire_before=now - 30 * 24 * HOUR
        )
        (job,) = batch.jobs
        tokens[job.delivery.id] = job.claim_token
        claimed.append(job.delivery.id)
    return claimed
