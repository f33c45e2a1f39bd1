"""The simulator's dice: injected faults and service latency, one seeded generator each.

Each platform draws from its own generators, so switching faults on for one platform does not
shift the latency or fault sequence of another, and a seed replays a run.

A fault is drawn once per post-creating call, *before* anything is committed, and decides
the whole story of that call:

- ``error``: a platform-shaped transient 5xx; nothing is committed.
- ``throttle``: a platform-shaped short throttle; nothing is committed; not a violation.
- ``drop``: commit, then close the connection without an answer.
- ``timeout``: decide now whether to commit (``timeout_commit_share``), commit at once if so,
  then hold the request for ``hang_s`` and close it without an answer. Nothing is ever
  committed after the delay, so a client that timed out can trust a later look-up.

Calls that create no post (look-ups, container creation and status polls, upload set-up,
YouTube's upload status queries, token refresh) draw from their own kind's rates
(:class:`~.config.CallKind`), before they are handled: an error or a throttle answers in the
platform's shape and commits nothing; a timeout holds the connection for ``hang_s``, then
closes it unanswered, nothing committed; a drop closes it unanswered, after committing when the
call makes something a later call uses (container creation, upload set-up and image upload:
the container, session or image then exists, orphaned, as on the platform), else at once.

The dice also decide, per platform, how long a new post takes to show in listings and
whether the platform refuses a repeated post (:class:`~.config.DuplicateCheck`).

One more fault belongs to a body that takes time to arrive, YouTube's upload ``PUT``:

- ``cut``: the connection is closed once a random share of the declared body has arrived;
  nothing is answered, and the session keeps the whole 256 KiB units it received. It is drawn
  before the body is read, from a generator of its own, so switching it on does not shift the
  other draws; a PUT it cuts draws no other fault.
"""

from __future__ import annotations

import random
from enum import StrEnum

from herald.domain import Platform
from herald.simulator.config import CallKind, FaultConfig, SimulatorConfig

__all__ = ["Dice", "Fault"]


class Fault(StrEnum):
    ERROR = "error"
    TIMEOUT = "timeout"
    DROP = "drop"
    THROTTLE = "throttle"
    CUT = "cut"


class Dice:
    def __init__(self, config: SimulatorConfig) -> None:
        self._faults = {p: config.faults_for(p) for p in Platform}
        self._latency = {p: config.latency_for(p) for p in Platform}
        self._fault_rng = {p: random.Random(f"{config.seed}:{p.value}:faults") for p in Platform}
        self._latency_rng = {p: random.Random(f"{config.seed}:{p.value}:latency") for p in Platform}
        # A kind's own generator: whether a look-up faults leaves the publish draws as they
        # were (the Graph code of a throttle, on any call, still comes from the publish one).
        self._call_rng = {
            (p, k): random.Random(f"{config.seed}:{p.value}:{k.value}:faults")
            for p in Platform
            for k in CallKind
            if k is not CallKind.PUBLISH
        }
        self._listing = config.listing_lag
        self._listing_rng = {p: random.Random(f"{config.seed}:{p.value}:listing") for p in Platform}
        self._repeat_rng = {p: random.Random(f"{config.seed}:{p.value}:repeats") for p in Platform}
        self._cut_rng = {p: random.Random(f"{config.seed}:{p.value}:cuts") for p in Platform}

    def faults(self, platform: Platform) -> FaultConfig:
        return self._faults[platform]

    def set_faults(self, platform: Platform, faults: FaultConfig) -> None:
        self._faults[platform] = faults

    def draw(self, platform: Platform, kind: CallKind = CallKind.PUBLISH) -> Fault | None:
        config = self._faults[platform].for_call(kind)
        if not config.active:
            return None
        rng = (
            self._fault_rng[platform]
            if kind is CallKind.PUBLISH
            else self._call_rng[(platform, kind)]
        )
        roll = rng.random()
        for fault, rate in (
            (Fault.ERROR, config.error_rate),
            (Fault.TIMEOUT, config.timeout_rate),
            (Fault.DROP, config.drop_rate),
            (Fault.THROTTLE, config.throttle_rate),
        ):
            if roll < rate:
                return fault
            roll -= rate
        return None

    def listing_lag_s(self, platform: Platform) -> float:
        """How long a post created now stays out of its channel's listings."""
        return self._listing.sample(self._listing_rng[platform])

    def refuses_repeat(self, platform: Platform, share: float) -> bool:
        """Whether the platform's duplicate check catches this repeat (``share`` of them)."""
        return share >= 1.0 or self._repeat_rng[platform].random() < share

    def cut_after(self, platform: Platform, length: int) -> int | None:
        """How many bytes of a ``length``-byte body arrive before a ``cut`` fault closes the
        connection (any of 0 to ``length - 1``), or ``None``: no cut this time."""
        rate = self._faults[platform].cut_rate
        if rate <= 0 or length <= 0:
            return None
        rng = self._cut_rng[platform]
        if rng.random() >= rate:
            return None
        return rng.randrange(length)

    def commit_before_hang(self, platform: Platform) -> bool:
        return self._fault_rng[platform].random() < self._faults[platform].timeout_commit_share

    def graph_throttle_code(self, platform: Platform) -> int:
        return self._fault_rng[platform].choice(self._faults[platform].graph_throttle_codes)

    def latency_s(self, platform: Platform) -> float:
        return self._latency[platform].sample(self._latency_rng[platform])
