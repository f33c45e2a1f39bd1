"""What the simulated platforms received: the judge for tests and benchmarks.

Everything here is counted on the receiving side. A post is recorded the moment it is
committed, together with whether its answer was handed back (``delivered``) or deliberately
withheld by a drop or timeout fault. *Refusals* are the requests a platform answered with a
throttle: over one of its limits, or an injected throttle. Those over a limit are also limit
*violations* (the simulator's limits are Herald's: a correct Herald never sends them);
injected throttles are faults, counted apart, and never violations. "0 violations, N refused"
is a run that kept every limit and was throttled N times for reasons of the platform's own.
The time each platform spent down (its port refusing connections) is counted too.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, Self, TypeVar

from herald.domain import Platform

__all__ = ["INJECTED", "Audit", "PostRecord", "Refusal", "RequestRecord", "Violation", "matching"]

#: The ``rule`` of a refusal by an injected throttle.
INJECTED = "injected"


class _Record(Protocol):
    @property
    def platform(self) -> Platform: ...

    @property
    def account(self) -> str | None: ...


R = TypeVar("R", bound=_Record)


def matching(
    records: Iterable[R], platform: Platform | None = None, account: str | None = None
) -> list[R]:
    """The records of ``platform`` and ``account``, in order; ``None`` stands for any."""
    return [
        r
        for r in records
        if (platform is None or r.platform is platform)
        and (account is None or r.account == account)
    ]


@dataclass(frozen=True, slots=True)
class PostRecord:
    platform: Platform
    account: str  # external id
    post_id: str
    text: str  # message, caption, commentary, or the video description
    created_at: float  # Unix time on the simulator clock
    delivered: bool  # False: the post exists but its answer was dropped
    title: str | None = None  # YouTube only
    # The uploaded file, as received (YouTube's video, LinkedIn's image): counted and
    # hashed as it arrived, never kept.
    media_bytes: int | None = None
    media_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["platform"] = self.platform.value
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> PostRecord:
        return cls(**{**raw, "platform": Platform(raw["platform"])})


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request a platform refused with a throttle."""

    platform: Platform
    account: str
    rule: str  # named as in herald.limits.rules.default_rules ("page_calls"...), or INJECTED
    at: float  # Unix time on the simulator clock

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "platform": self.platform.value}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Self:
        return cls(**{**raw, "platform": Platform(raw["platform"])})


@dataclass(frozen=True, slots=True)
class Violation(Refusal):
    """A refusal over one of the platform's limits: more was sent than the limit allows."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    at: float  # time.monotonic() when the request arrived
    platform: Platform
    account: str | None
    method: str
    path: str
    status: int  # 0: no answer (dropped, hung up, or the client went away)
    ended: float | None = None  # time.monotonic() when it was answered or given up
    # Its Content-Range header (YouTube's upload PUTs): where each chunk started.
    content_range: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "platform": self.platform.value}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RequestRecord:
        return cls(**{**raw, "platform": Platform(raw["platform"])})


def _by_rule(refusals: Iterable[Refusal]) -> dict[str, int]:
    """Refusals counted by ``platform:rule``."""
    return dict(Counter(f"{r.platform.value}:{r.rule}" for r in refusals))


class Audit:
    def __init__(self, request_log_limit: int = 1_000_000) -> None:
        self._log_limit = request_log_limit
        # In-flight gauges survive a reset: requests on the wire still end later.
        self._in_flight: Counter[Platform] = Counter()
        self._account_in_flight: Counter[tuple[Platform, str]] = Counter()
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded so far (the platforms keep their posts)."""
        self._posts: list[PostRecord] = []
        self._post_counts: Counter[Platform] = Counter()
        self._undelivered = 0
        self._texts: Counter[tuple[Platform, str, str | None, str]] = Counter()
        self._duplicates = 0
        self.duplicates_refused = 0
        self._violations: list[Violation] = []
        self._refusals: list[Refusal] = []
        self._down_s: dict[Platform, float] = dict.fromkeys(Platform, 0.0)
        self._injected: dict[Platform, Counter[str]] = {p: Counter() for p in Platform}
        self._requests: deque[RequestRecord] = deque(maxlen=self._log_limit)
        self._request_counts: Counter[Platform] = Counter()
        self._max_in_flight: Counter[Platform] = Counter(self._in_flight)
        self._account_max: Counter[tuple[Platform, str]] = Counter(self._account_in_flight)

    # -- recording (called by the handlers) ----------------------------------------------
    def post(self, record: PostRecord) -> None:
        self._posts.append(record)
        self._post_counts[record.platform] += 1
        if not record.delivered:
            self._undelivered += 1
        key = (record.platform, record.account, record.title, record.text)
        self._texts[key] += 1
        if self._texts[key] > 1:
            self._duplicates += 1

    def violation(self, platform: Platform, account: str, rule: str, at: float) -> None:
        violation = Violation(platform, account, rule, at)
        self._violations.append(violation)
        self._refusals.append(violation)

    def throttled(self, platform: Platform, account: str, at: float) -> None:
        """An injected throttle refused a request (a fault: not a violation)."""
        self._refusals.append(Refusal(platform, account, INJECTED, at))

    def refused(self, platform: Platform, account: str, rule: str, at: float) -> None:
        """A limit Herald cannot know ahead refused a request (Instagram's account calls,
        4800 x impressions): not a violation; Herald must obey the refusal."""
        self._refusals.append(Refusal(platform, account, rule, at))

    def was_down(self, platform: Platform, seconds: float) -> None:
        self._down_s[platform] += seconds

    def injected_fault(self, platform: Platform, kind: str) -> None:
        self._injected[platform][kind] += 1

    def request_started(self, platform: Platform) -> None:
        current = self._in_flight[platform] + 1
        self._in_flight[platform] = current
        self._max_in_flight[platform] = max(self._max_in_flight[platform], current)

    def account_started(self, platform: Platform, account: str) -> None:
        key = (platform, account)
        self._account_in_flight[key] += 1
        self._account_max[key] = max(self._account_max[key], self._account_in_flight[key])

    def request_finished(self, record: RequestRecord) -> None:
        self._in_flight[record.platform] -= 1
        if record.account is not None:
            self._account_in_flight[(record.platform, record.account)] -= 1
        self._request_counts[record.platform] += 1
        self._requests.append(record)

    # -- reading ---------------------------------------------------------------------------
    def posts(
        self, platform: Platform | None = None, account: str | None = None
    ) -> list[PostRecord]:
        return matching(self._posts, platform, account)

    def duplicates(self) -> int:
        """Extra posts with the same (platform, account, title, text) as an earlier one."""
        return self._duplicates

    def violations(self, platform: Platform | None = None) -> list[Violation]:
        return matching(self._violations, platform)

    def refusals(
        self, platform: Platform | None = None, account: str | None = None
    ) -> list[Refusal]:
        """Every request refused with a throttle (violations included), in order."""
        return matching(self._refusals, platform, account)

    def requests(
        self, platform: Platform | None = None, account: str | None = None
    ) -> list[RequestRecord]:
        return matching(self._requests, platform, account)

    def injected(self, platform: Platform) -> dict[str, int]:
        return dict(self._injected[platform])

    def max_concurrency(self, platform: Platform, account: str | None = None) -> int:
        if account is None:
            return self._max_in_flight[platform]
        return self._account_max[(platform, account)]

    def in_flight(self, platform: Platform) -> int:
        return self._in_flight[platform]

    def summary(self) -> dict[str, Any]:
        """JSON-ready totals, cheap to take often; per-platform detail where a benchmark
        needs it."""
        account_max: dict[str, int] = {p.value: 0 for p in Platform}
        for (platform, _), peak in self._account_max.items():
            account_max[platform.value] = max(account_max[platform.value], peak)
        return {
            "posts": len(self._posts),
            "posts_by_platform": {p.value: self._post_counts[p] for p in Platform},
            "undelivered": self._undelivered,
            "duplicates": self._duplicates,
            "duplicates_refused": self.duplicates_refused,
            "limit_violations": len(self._violations),
            "violations_by_rule": _by_rule(self._violations),
            "refused": len(self._refusals),
            "refused_by_rule": _by_rule(self._refusals),
            "down_s": {p.value: round(self._down_s[p], 3) for p in Platform},
            "max_concurrency": {p.value: self._max_in_flight[p] for p in Platform},
            "max_concurrency_per_account": account_max,
            "injected": {p.value: dict(self._injected[p]) for p in Platform},
            "requests": {p.value: self._request_counts[p] for p in Platform},
        }
