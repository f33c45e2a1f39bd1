"""Replay: an engine that starts rebuilds its limiter from what the store says was sent.

The platforms remember what an engine sent before it stopped; a limiter that started empty
would grant a fresh quota on every restart (every ``herald run --burst``). So before the
first claim, :func:`restore` reads :meth:`~herald.types.EngineStore.sent_since` over the
longest span a rule looks back, and replays each request with the claims the worker reserved
for it:

- a publish: ``usage_of(content)``; one that definitely failed (:func:`gives_back`, the
  worker's own refund test) without the units of refundable rules, which it gave back;
- a look-up: ``lookup_usage()`` plus what its listing pages after the first reserved (stored
  with it). Look-ups are never refunded;
- a send whose outcome is not recorded (on the wire, or its engine stopped or died): a
  publish, since it may have landed. Once its delivery is handed back or recovered the send
  has a record of its own, ``abandoned``, so that it still counts after its look-up settles
  the delivery: the platform counted the request whatever the look-up finds. A send is
  counted once however many records name it;
- a request that never reached the platform (:func:`reached` is False): nothing. The
  platform counted none of it, and the worker gave its whole grant back.

``rate_limited`` and ``auth`` end publishes and look-ups alike: the record is a look-up when
an earlier record of the same send (same delivery and number) precedes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from herald.domain import Platform, SentRecord
from herald.limits.rules import CalendarQuota, LimitClaim, LimitRule, Pacing, claims_for
from herald.types import Connector, EngineStore, RateLimiter

__all__ = ["gives_back", "horizon_s", "reached", "replayed_grants", "restore"]

_LOOKUP = frozenset({"found", "not_found", "not_listed_yet", "check_failed"})  # look-ups only
_PUBLISH = frozenset({"published", "transient", "rejected", "unknown", "duplicate", "abandoned"})
_NOT_PUBLISHED = frozenset({"rate_limited", "auth", "rejected", "transient", "not_sent"})
_NEVER_SENT = frozenset({"not_sent"})  # the request never left: the platform saw nothing
_CALENDAR_SPAN_S = 2 * 86_400.0  # the current day in any zone (25 h at most) and the one before

#: Claims granted at a Unix time.
Grant = tuple[float, list[LimitClaim]]


def gives_back(outcome: str | None) -> bool:
    """A publish that ended with ``outcome`` definitely did not publish: refundable rules get
    its units back (the worker refunds them; a replay leaves them out)."""
    return outcome in _NOT_PUBLISHED


def reached(outcome: str | None) -> bool:
    """False for a request that provably never reached the platform: every unit of its grant
    goes back (the worker refunds it whole; a replay leaves it out)."""
    return outcome not in _NEVER_SENT


def horizon_s(rules: Iterable[LimitRule]) -> float:
    """How far back a grant can still count against one of ``rules``; 0 without rules."""
    spans = [0.0]
    for rule in rules:
        algorithm = rule.algorithm
        if isinstance(algorithm, CalendarQuota):
            spans.append(_CALENDAR_SPAN_S + algorithm.margin_s)
        elif isinstance(algorithm, Pacing):
            spans.append(algorithm.burst / algorithm.rate_per_s)  # the TAT's reach
        else:
            spans.append(algorithm.window_s + algorithm.margin_s)
    return max(spans)


def _sends(records: Sequence[SentRecord]) -> list[tuple[SentRecord, bool]]:
    """Each request once, with whether it was a look-up."""
    recorded = {(r.delivery_id, r.number) for r in records if r.outcome in _PUBLISH}
    # Sends seen so far; one with no recorded outcome came before any look-up of it.
    seen = {(r.delivery_id, r.number) for r in records if r.outcome is None}
    sends: list[tuple[SentRecord, bool]] = []
    for record in records:
        send = (record.delivery_id, record.number)
        if record.outcome is None:
            if send not in recorded:  # else the same send is in the list with its outcome
                sends.append((record, False))
            continue
        lookup = record.outcome in _LOOKUP or (record.outcome not in _PUBLISH and send in seen)
        sends.append((record, lookup))
        seen.add(send)
    return sends


def _claims(
    record: SentRecord, lookup: bool, connector: Connector, rules: tuple[LimitRule, ...]
) -> list[LimitClaim]:
    """The claims the worker reserved for this request and kept."""
    usage: Mapping[str, int]
    if lookup:  # its first page, and the pages after it
        usage = Counter(connector.lookup_usage()) + Counter(record.page_usage)
    else:
        usage = connector.usage_of(record.content)
        if gives_back(record.outcome):
            rules = tuple(rule for rule in rules if not rule.refundable)
    return claims_for(record.platform, rules, record.channel_external_id, usage)


def replayed_grants(
    records: Sequence[SentRecord],
    connectors: Mapping[Platform, Connector],
    rules: Mapping[Platform, tuple[LimitRule, ...]],
) -> list[Grant]:
    """The grants behind ``records`` (in time order), oldest first; requests on platforms
    without a connector or a rule that counts them are left out."""
    grants: list[Grant] = []
    for record, lookup in _sends([r for r in records if reached(r.outcome)]):
        connector = connectors.get(record.platform)
        if connector is None:
            continue
        claims = _claims(record, lookup, connector, rules.get(record.platform, ()))
        if claims:
            grants.append((record.started_at.timestamp(), claims))
    grants.sort(key=lambda grant: grant[0])  # stable: the store's order among equal times
    return grants


async def restore(
    limiter: RateLimiter,
    store: EngineStore,
    connectors: Mapping[Platform, Connector],
    rules: Mapping[Platform, tuple[LimitRule, ...]],
    now: datetime,
) -> int | None:
    """Rebuild ``limiter`` from what was sent within reach of ``rules``, if it needs it; return
    how many requests still count (None: it needed nothing, see
    :meth:`~herald.types.RateLimiter.rebuild`)."""
    reach = horizon_s(rule for platform in connectors for rule in rules.get(platform, ()))

    async def earlier() -> list[Grant]:
        if reach <= 0:
            return []
        records = await store.sent_since(now - timedelta(seconds=reach))
        return replayed_grants(records, connectors, rules)

    return await limiter.rebuild(earlier)
