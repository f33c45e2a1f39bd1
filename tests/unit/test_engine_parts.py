"""The worker pool's parts, each on its own: admission, grants, outcomes, parked channels.

On virtual time and the in-memory store; no engine, no lanes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from herald.config import EngineSettings
from herald.domain import Channel, ChannelStatus, Content, Job, Platform
from herald.engine.admission import GO, Admission, HandBack, Hold, Settle
from herald.engine.grants import Grants
from herald.engine.metrics import Metrics
from herald.engine.outcomes import Outcomes
from herald.engine.parking import ParkedChannels
from herald.engine.pauses import Pauses
from herald.engine.policy import Policy
from herald.engine.writer import TransitionWriter
from herald.errors import RateLimited
from herald.limits.memory import MemoryLimiter
from herald.limits.rules import LimitRule, RollingWindow, pause_key
from herald.states import DeliveryState
from herald.stores.memory import MemoryStore
from herald.testing import FakeConnector, FakePlatform, StaticCredentials, channel, new_post
from herald.testing.virtual_time import running_clock

pytestmark = pytest.mark.virtual_time

S = DeliveryState
FB = Platform.FACEBOOK
HOLD_S = 1.0


def per_hour(limit: int, *, refundable: bool = False) -> LimitRule:
    return LimitRule("page_calls", "calls", "channel", RollingWindow(limit, 3600), refundable)


def per_half_second(limit: int) -> LimitRule:
    return LimitRule("page_calls", "calls", "channel", RollingWindow(limit, 0.5))


@dataclass
class Parts:
    """The parts as the engine wires them, around one channel of a memory store."""

    store: MemoryStore
    channel: Channel
    rules: dict[Platform, tuple[LimitRule, ...]] = field(default_factory=lambda: {FB: ()})
    limiter: MemoryLimiter = field(default_factory=MemoryLimiter)
    metrics: Metrics = field(default_factory=Metrics)
    credentials: StaticCredentials = field(default_factory=StaticCredentials)
    woken: list[datetime] = field(default_factory=list)
    events: list[None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock = running_clock()
        self.policy = Policy(EngineSettings(max_lateness_s=3600, check_delay_s=5.0))
        self.parked = ParkedChannels(self.store, self.credentials, lambda: self.events.append(None))
        self.grants = Grants(self.limiter, self.rules, self.metrics, self.clock, hold_s=HOLD_S)
        self.pauses = Pauses(self.limiter, self.policy.settings, self.metrics, self.clock)
        self.admission = Admission(self.policy, self.grants, self.parked, self.clock, self.pauses)
        self.writer = TransitionWriter(self.store)
        self.outcomes = Outcomes(
            self.writer,
            self.limiter,
            self.parked,
            self.metrics,
            wake=self.woken.append,
            events_recorded=lambda: self.events.append(None),
        )

    async def job(self, *, due_at: datetime | None = None, text: str | None = None) -> Job:
        """A delivery of a new post, claimed."""
        await self.store.add_posts([new_post([self.channel], due_at=due_at, text=text)])
        now = self.clock.now()
        batch = await self.store.claim_due(
            now=now,
            limit=1,
            lease_until=now + timedelta(minutes=5),
            expire_before=now - timedelta(days=30),
        )
        (claimed,) = batch.jobs
        return claimed

    def limit(self, rule: LimitRule) -> None:
        self.rules[FB] = (rule,)

    def count(self, metric: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(metric, {"platform": FB.value, **labels})
        return value or 0.0


@pytest.fixture
async def parts() -> AsyncIterator[Parts]:
    store = MemoryStore()
    fb = channel(FB)
    await store.add_channels([fb])
    built = Parts(store, fb)
    writing = asyncio.create_task(built.writer.run())
    yield built
    await built.writer.close()
    await writing


@pytest.fixture
def connector() -> FakeConnector:
    return FakeConnector(FB, FakePlatform())


# -- admission ------------------------------------------------------------------------------
async def test_admission_lets_a_job_within_its_limits_go(parts, connector):
    job = await parts.job()
    assert await parts.admission.admit(job, connector, may_hold=lambda: True) is GO


async def test_an_expired_job_is_settled_without_asking_the_limiter(parts, connector):
    job = await parts.job(due_at=parts.clock.now() - timedelta(hours=2))
    verdict = await parts.admission.admit(job, connector, may_hold=lambda: True)
    assert isinstance(verdict, Settle)
    assert verdict.decision.transition.target is S.EXPIRED
    assert parts.count("herald_rate_limit_waits_total") == 0


async def test_content_the_platform_refuses_is_settled_as_failed(parts, connector):
    job = await parts.job()
    job = Job(job.delivery, job.channel, Content(text=""), job.claim_token)
    verdict = await parts.admission.admit(job, connector, may_hold=lambda: True)
    assert isinstance(verdict, Settle)
    assert verdict.decision.outcome == "failed"


async def test_a_short_limit_wait_holds_the_job_in_its_lane_unless_stopping(parts, connector):
    parts.limit(per_half_second(1))
    assert await parts.admission.admit(await parts.job(), connector, may_hold=lambda: True) is GO
    second = await parts.job()
    held = await parts.admission.admit(second, connector, may_hold=lambda: True)
    assert isinstance(held, Hold)
    assert 0 < held.wait_s <= 0.5
    stopping = await parts.admission.admit(second, connector, may_hold=lambda: False)
    assert isinstance(stopping, HandBack)
    assert stopping.wait_s == pytest.approx(held.wait_s)
    assert stopping.transition.target is S.SCHEDULED
    assert stopping.transition.next_attempt_at == parts.clock.now() + timedelta(
        seconds=stopping.wait_s
    )
    assert parts.count("herald_rate_limit_waits_total") == 2


async def test_a_stop_that_begins_while_the_limiter_answers_hands_the_job_back(parts, connector):
    parts.limit(per_half_second(1))
    assert await parts.admission.admit(await parts.job(), connector, may_hold=lambda: True) is GO
    stopping = False
    limiter = parts.grants.limiter

    class StopWhileAnswering:
        async def reserve(self, claims, now, *, pauses=()):
            nonlocal stopping
            wait_s = await limiter.reserve(claims, now, pauses=pauses)
            stopping = True  # SIGTERM arrives while the limiter is answering
            return wait_s

    parts.grants.limiter = StopWhileAnswering()  # type: ignore[assignment]
    verdict = await parts.admission.admit(
        await parts.job(), connector, may_hold=lambda: not stopping
    )
    assert isinstance(verdict, HandBack)  # not held in a lane that is about to stop


async def test_a_long_limit_wait_hands_the_job_back_due_when_the_window_frees(parts, connector):
    parts.limit(per_hour(1))
    assert await parts.admission.admit(await parts.job(), connector, may_hold=lambda: True) is GO
    verdict = await parts.admission.admit(await parts.job(), connector, may_hold=lambda: True)
    assert isinstance(verdict, HandBack)
    assert verdict.wait_s == pytest.approx(3600)


async def test_a_publish_bigger_than_a_limit_is_settled_as_rejected(parts):
    parts.limit(per_hour(1))
    big = FakeConnector(FB, FakePlatform(), usage=lambda content: {"calls": 2})
    verdict = await parts.admission.admit(await parts.job(), big, may_hold=lambda: True)
    assert isinstance(verdict, Settle)
    assert "more than a facebook limit allows" in (verdict.decision.transition.error or "")


async def test_a_parked_channel_s_job_goes_back_until_the_channel_is_active(parts, connector):
    job = await parts.job()
    await parts.parked.park(parts.channel, ChannelStatus.NEEDS_REAUTH)
    verdict = await parts.admission.admit(job, connector, may_hold=lambda: True)
    assert isinstance(verdict, HandBack)
    assert verdict.wait_s is None  # waits for the user, not for a limit
    await parts.store.set_channel_status(parts.channel.id, ChannelStatus.ACTIVE)
    assert await parts.admission.admit(job, connector, may_hold=lambda: True) is GO


async def test_parking_a_channel_whose_workspace_was_erased_is_not_an_error(parts):
    """The workspace went while its job was held: parking finds no channel and does nothing
    (no event, nothing parked), instead of failing the job's handling."""
    await parts.store.erase_workspace(parts.channel.workspace_id)
    await parts.parked.park(parts.channel, ChannelStatus.NEEDS_REAUTH)
    assert parts.events == []
    assert not await parts.parked.holds(parts.channel)


# -- grants ---------------------------------------------------------------------------------
async def test_a_refund_gives_the_units_back_and_a_drop_keeps_them_spent(parts):
    parts.limit(per_hour(1, refundable=True))
    first, second = await parts.job(), await parts.job()
    usage = {"calls": 1}
    assert await parts.grants.reserve(first, usage) == 0
    assert await parts.grants.reserve(second, usage) > 0
    await parts.grants.refund(first)
    assert await parts.grants.reserve(second, usage) == 0
    parts.grants.drop(second)
    await parts.grants.refund(second)  # dropped: nothing left to give back
    assert await parts.grants.reserve(first, usage) > 0


async def test_a_look_up_page_waits_out_a_short_limit_wait(parts):
    parts.limit(per_half_second(1))
    job = await parts.job()
    meter = parts.grants.meter(job)
    start = parts.clock.monotonic()
    await meter({"calls": 1})
    await meter({"calls": 1})  # the window is full: waits for it on the loop's clock
    assert parts.clock.monotonic() - start == pytest.approx(0.5)


async def test_a_look_up_page_over_a_long_wait_ends_the_look_up_as_throttled(parts):
    parts.limit(per_hour(1))
    meter = parts.grants.meter(await parts.job())
    await meter({"calls": 1})
    with pytest.raises(RateLimited) as raised:
        await meter({"calls": 1})
    assert raised.value.retry_after == pytest.approx(3600)
    assert raised.value.pause is False  # Herald's own limit: the channel is not paused


async def test_the_pages_a_look_up_was_granted_are_kept_for_its_record(parts):
    parts.limit(per_hour(2))
    job = await parts.job()
    meter = parts.grants.meter(job)
    await meter({"calls": 1})
    await meter({"calls": 1})
    with pytest.raises(RateLimited):
        await meter({"calls": 1})  # not granted: never sent, not counted
    assert parts.grants.paged(job) == {"calls": 2}
    assert parts.grants.paged(job) == {}  # recorded once


# -- outcomes -------------------------------------------------------------------------------
async def test_a_throttle_decision_pauses_writes_and_wakes_the_dispatcher(parts):
    job = await parts.job(text="throttled")
    now = parts.clock.now()
    signal = RateLimited("(#32) Page request limit reached", retry_after=60, scope="channel")
    decision = parts.policy.after_publish(job, now, now, signal)
    await parts.outcomes.record(job, decision)
    until = now + timedelta(seconds=60)
    assert parts.woken == [until]
    stored = await parts.store.get_delivery(job.delivery.id)
    assert (stored.state, stored.next_attempt_at) == (S.RETRY_WAIT, until)
    pause = pause_key(FB, "channel", parts.channel.external_id)
    assert await parts.limiter.reserve([], parts.clock.time(), pauses=[pause]) > 0
    assert parts.count("herald_deliveries_total", outcome="rate_limited") == 1


async def test_an_auth_decision_parks_the_channel_and_forgets_its_secrets(parts):
    job = await parts.job()
    now = parts.clock.now()
    decision = parts.policy.auth_unsent(job, RuntimeError("token revoked"), now)
    await parts.outcomes.record(job, decision)
    stored = await parts.store.get_channel(parts.channel.id)
    assert stored.status is ChannelStatus.NEEDS_REAUTH
    assert parts.credentials.forgotten == [parts.channel.id]
    assert parts.events  # the webhook sender was woken for channel.needs_reauth
    assert await parts.parked.holds(parts.channel)


async def test_a_hand_back_is_written_and_wakes_the_dispatcher_when_it_is_due(parts):
    job = await parts.job()
    due = parts.clock.now() + timedelta(seconds=90)
    await parts.outcomes.carry_out(job, HandBack(parts.policy.release(job, due), 90.0))
    assert parts.woken == [due]
    assert (await parts.store.get_delivery(job.delivery.id)).state is S.SCHEDULED
    parked = await parts.job()
    await parts.outcomes.carry_out(parked, HandBack(parts.policy.release(parked, due)))
    assert parts.woken == [due]  # a parked channel's job wakes nobody
