"""What a run did, judged from both ends: Herald's store and the platforms' audit.

- **lost**: a delivery Herald records as published that no platform holds, or one left in a
  state that needs the engine when the run ended (silently dropped);
- **duplicates**: posts a platform holds more than once for one delivery, or holds with no
  delivery behind them, and resends a platform refused as repeats (every delivery's text is
  its own, so a refused repeat is a resend: caught by the platform's check this time, which
  is luck, not Herald);
- **misrecorded**: a post the platform holds while Herald records the delivery as failed or
  expired;
- **limit_violations**: requests a platform refused for a limit Herald was configured to know;
- **refused**: every request a platform refused with a throttle, violations included: the
  others are throttles of the platform's own (injected faults). Refusals do not fail a run:
  "0 violations, N refused" kept every limit and knocked N times on a closed door;
- **deferred**: deliveries waiting in the store for a platform quota window to reopen (to be
  sent, or to be looked up).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from herald.demo.workload import PlannedDelivery
from herald.domain import Delivery
from herald.simulator import PostRecord, Violation
from herald.states import DeliveryState
from herald.types import Store

__all__ = ["Summary", "all_deliveries", "judge", "percentile"]

S = DeliveryState


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Summary:
    posts: int
    deliveries: int
    published: int = 0
    reconciled: int = 0
    failed: int = 0
    expired: int = 0
    unconfirmed: int = 0
    cancelled: int = 0
    deferred: int = 0  # waiting in the store for a quota window to reopen
    unfinished: int = 0
    lost: int = 0
    duplicates: int = 0
    misrecorded: int = 0
    limit_violations: int = 0
    refused: int = 0  # requests refused with a throttle, violations included
    elapsed_s: float = 0.0  # the whole run, lead time before the first due post included
    drain_s: float = 0.0  # first due time to last outcome
    deliveries_per_s: float = 0.0  # finished deliveries per second of drain
    lateness_p50_s: float = 0.0
    lateness_p99_s: float = 0.0
    lateness_max_s: float = 0.0
    reauthorized: int = 0
    injected_faults: dict[str, int] = field(default_factory=dict)
    version_warnings: list[str] = field(default_factory=list)  # platform.version_retiring
    by_platform: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicates or self.misrecorded or self.limit_violations)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in (
            "elapsed_s",
            "drain_s",
            "deliveries_per_s",
            "lateness_p50_s",
            "lateness_p99_s",
            "lateness_max_s",
        ):
            out[key] = round(out[key], 3)
        return out


async def all_deliveries(store: Store) -> dict[str, Delivery]:
    found: dict[str, Delivery] = {}
    after = ""
    while page := await store.list_deliveries(limit=5000, after_id=after):
        found.update((d.id, d) for d in page)
        after = page[-1].id
    return found


def _audit_index(
    posts: Iterable[PostRecord], tags: set[str]
) -> tuple[Counter[tuple[str, str, str]], int]:
    """Posts per (platform, account, tag), and how many posts carry no known tag."""
    held: Counter[tuple[str, str, str]] = Counter()
    strays = 0
    for post in posts:
        tag = next((word for word in post.text.split() if word in tags), None)
        if tag is None:
            strays += 1
        else:
            held[(post.platform.value, post.account, tag)] += 1
    return held, strays


def judge(
    posts: int,
    planned: Sequence[PlannedDelivery],
    deliveries: dict[str, Delivery],
    audit_posts: Sequence[PostRecord],
    violations: Sequence[Violation],
    *,
    elapsed_s: float,
    settled_at: datetime,
    refused: int = 0,
    refused_repeats: int = 0,
) -> Summary:
    summary = Summary(posts=posts, deliveries=len(planned), elapsed_s=elapsed_s, refused=refused)
    tags = {p.tag for p in planned}
    held, strays = _audit_index(audit_posts, tags)
    summary.duplicates = strays + sum(n - 1 for n in held.values() if n > 1) + refused_repeats
    summary.limit_violations = len(violations)
    per_platform: dict[str, Counter[str]] = defaultdict(Counter)
    lateness: list[float] = []
    for plan in planned:
        delivery = deliveries.get(plan.delivery_id)
        key = (plan.channel.platform.value, plan.channel.external_id, plan.tag)
        on_platform = held.get(key, 0) > 0
        state = _account(summary, delivery, on_platform, settled_at=settled_at)
        per_platform[plan.channel.platform.value][state] += 1
        if delivery is not None and delivery.state is S.PUBLISHED and delivery.published_at:
            lateness.append((delivery.published_at - delivery.due_at).total_seconds())
    summary.by_platform = {p: dict(c) for p, c in sorted(per_platform.items())}
    finished = summary.deliveries - summary.unfinished
    summary.drain_s = _drain_s(deliveries.values())
    summary.deliveries_per_s = finished / summary.drain_s if summary.drain_s > 0 else 0.0
    summary.lateness_p50_s = percentile(lateness, 0.5)
    summary.lateness_p99_s = percentile(lateness, 0.99)
    summary.lateness_max_s = max(lateness, default=0.0)
    return summary


def _drain_s(deliveries: Iterable[Delivery]) -> float:
    """Seconds from the first due time to the last outcome."""
    first: datetime | None = None
    last: datetime | None = None
    for d in deliveries:
        end = d.published_at or d.updated_at
        first = d.due_at if first is None else min(first, d.due_at)
        if end is not None:
            last = end if last is None else max(last, end)
    if first is None or last is None:
        return 0.0
    return max(0.0, (last - first).total_seconds())


def _waits_for_a_window(delivery: Delivery, on_platform: bool, settled_at: datetime) -> bool:
    """Due again only after the run settled: a quota window must reopen first. One that owes
    its look-up may be on the platform already (the look-up will say so); one that is to be
    sent must not be."""
    if delivery.next_attempt_at is None or delivery.next_attempt_at <= settled_at:
        return False
    if delivery.state is S.UNCONFIRMED:
        return True
    return delivery.state in (S.SCHEDULED, S.RETRY_WAIT) and not on_platform


def _account(
    summary: Summary, delivery: Delivery | None, on_platform: bool, *, settled_at: datetime
) -> str:
    """Count one delivery into ``summary``; return the label it was counted under."""
    if delivery is None:
        summary.lost += 1
        return "lost"
    state = delivery.state
    if state is S.PUBLISHED:
        summary.published += 1
        summary.reconciled += delivery.reconciled
        if not on_platform:
            summary.lost += 1
            return "lost"
    elif state in (S.FAILED, S.EXPIRED, S.CANCELLED):
        setattr(summary, state.value, getattr(summary, state.value) + 1)
        if on_platform:
            summary.misrecorded += 1
    elif state is S.UNCONFIRMED and delivery.next_attempt_at is None:
        summary.unconfirmed += 1  # waiting for the user's decision: nothing more is automatic
    elif _waits_for_a_window(delivery, on_platform, settled_at):
        summary.deferred += 1  # a quota is spent: it goes out when its window reopens
        return "deferred"
    else:
        summary.unfinished += 1
        if not on_platform:
            summary.lost += 1
    return state.value
