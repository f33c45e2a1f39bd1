"""The judgement of a chaos run: the demo's judge (lost, duplicates, limit violations, counted
by the platforms) plus what the faults did: kills, sessions cut, the outage, engines that
stopped by themselves, and deliveries failed for an outage they had the time to wait out."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from herald.demo.judge import Summary
from herald.domain import Delivery
from herald.states import DeliveryState
from herald.types import Store

__all__ = ["Verdict", "failed_for_outage"]


@dataclass
class Verdict:
    store: str
    broker: str  # none: herald run engines; else a dispatcher and workers through it
    engines: int  # engine processes at once (a dispatcher and its workers, with a broker)
    seed: int
    deliveries: int
    published: int
    reconciled: int
    failed: int
    failed_for_outage: int
    expired: int
    unconfirmed: int
    deferred: int
    unfinished: int
    lost: int
    duplicates: int
    misrecorded: int
    limit_violations: int
    # Arrivals that put more requests in flight than a cap wider than a process allows, as the
    # simulator saw them (herald.demo.cap_judge).
    cap_violations: int
    cap_peaks: dict[str, int]  # the most in flight at once, per platform:scope
    refused: int
    kills: int
    worker_kills: int
    dispatcher_kills: int
    broker_restarts: int
    redis_restarts: int
    db_terminations: int
    outage_s: float
    engine_exits: int
    engine_exit_details: list[str]
    elapsed_s: float
    deliveries_per_s: float
    lateness_p99_s: float

    @classmethod
    def of(cls, summary: Summary, **run: Any) -> Verdict:
        """The judge's counts this verdict shares, then what the run adds (``run``)."""
        judged = asdict(summary)
        shared = {f.name: judged[f.name] for f in fields(cls) if f.name in judged}
        shared["deliveries_per_s"] = round(summary.deliveries_per_s, 1)
        shared["lateness_p99_s"] = round(summary.lateness_p99_s, 2)
        return cls(**(shared | run))

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing twice, no limit or cap exceeded, no engine stopped by a fault, no
        delivery failed for an outage it could have waited out."""
        return not (
            self.lost
            or self.duplicates
            or self.misrecorded
            or self.limit_violations
            or self.cap_violations
            or self.engine_exits
            or self.failed_for_outage
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


async def failed_for_outage(store: Store, deliveries: dict[str, Delivery]) -> int:
    """Failed deliveries that met a request which never reached the platform: an outage they
    were meant to wait out (requests that never left spend no retry) failed them instead."""
    failed = [d for d in deliveries.values() if d.state is DeliveryState.FAILED]
    count = 0
    for delivery in failed:
        attempts = await store.list_attempts(delivery.id)
        count += any(a.outcome == "not_sent" for a in attempts)
    return count
