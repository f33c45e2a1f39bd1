"""The webhook sender against a real local receiver, on every store: signed, retried with
backoff, given up at the bound, woken by the engine, within its concurrency cap."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from aiohttp import web
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry

from herald.backoff import Backoff
from herald.config import WebhookSettings
from herald.constants import WEBHOOK_DISABLED
from herald.domain import (
    DEFAULT_WORKSPACE,
    NewPost,
    Post,
    Transition,
    Webhook,
    WebhookEventState,
    Workspace,
    new_id,
    utcnow,
)
from herald.egress.policy import EgressPolicy
from herald.service.vault import Vault
from herald.service.webhook_sender import (
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WebhookSender,
    verify,
)
from herald.states import DeliveryState
from herald.testing import channel, eventually, new_post
from tests.suites.flaky import FlakyStore

S = DeliveryState
SECRET = "whsec_test-secret"


class Receiver:
    """A webhook endpoint that records what it gets and answers as told."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []  # answered in turn; 200 once used up
        self.in_flight = 0
        self.max_in_flight = 0
        self.release: asyncio.Event | None = None
        self.got_one = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.read()
            self.requests.append((dict(request.headers), body))
            self.got_one.set()
            if self.release is not None:
                await self.release.wait()
            status = self.statuses.pop(0) if self.statuses else 200
            return web.Response(status=status)
        finally:
            self.in_flight -= 1


FAST = WebhookSettings(
    backoff_base_s=0.01,
    backoff_cap_s=0.05,
    endpoint_backoff_base_s=0.01,
    endpoint_backoff_cap_s=0.05,
    idle_recheck_s=0.2,
    max_attempts=3,
    timeout_s=2.0,
)


async def subscribe(
    store, vault, url, events=("delivery.published",), workspace_id=DEFAULT_WORKSPACE
) -> Webhook:
    hook = Webhook(new_id("wh"), workspace_id, url, tuple(events))
    await store.add_webhook(hook, vault.encrypt(SECRET.encode()))
    return hook


async def tenant(store) -> str:
    workspace = Workspace(new_id("ws"), "Tenant B")
    await store.add_workspace(workspace)
    return workspace.id


def post_in(workspace_id: str, ch) -> NewPost:
    made = new_post([ch])
    post = Post(made.post.id, made.post.content, workspace_id=workspace_id)
    return NewPost(post, made.deliveries)


async def publish(store, count: int = 1, workspace_id: str = DEFAULT_WORKSPACE) -> list[str]:
    """Make ``count`` deliveries and publish them, recording delivery.published events."""
    ch = channel(workspace_id=workspace_id)
    await store.add_channels([ch])
    await store.add_posts([post_in(workspace_id, ch) for _ in range(count)])
    now = utcnow()
    batch = await store.claim_due(
        now=now,
        limit=count,
        lease_until=now + timedelta(minutes=5),
        expire_before=now - timedelta(days=1),
    )
    await store.apply(
        [
            Transition(j.delivery.id, S.PUBLISHING, claim_token=j.claim_token, sent=True)
            for j in batch.jobs
        ]
    )
    await store.apply(
        [
            Transition(
                j.delivery.id,
                S.PUBLISHED,
                claim_token=j.claim_token,
                external_id=f"ext-{j.delivery.id}",
                published_at=now,
                event="delivery.published",
            )
            for j in batch.jobs
        ]
    )
    return [j.delivery.id for j in batch.jobs]


def outcomes(registry: CollectorRegistry) -> dict[str, float | None]:
    """``herald_webhook_deliveries_total`` by outcome."""
    return {
        outcome: registry.get_sample_value("herald_webhook_deliveries_total", {"outcome": outcome})
        for outcome in ("delivered", "failed", "disabled")
    }


async def run_until(sender: WebhookSender, condition: Callable[[], bool]) -> None:
    """Run ``sender`` until ``condition()`` holds, then stop it."""
    task = asyncio.create_task(sender.run())
    try:
        await eventually(condition)
    finally:
        sender.request_stop()
        await task


#: The receivers of these tests listen on loopback: allowed as an operator would allow them.
LOOPBACK = EgressPolicy.allowing("127.0.0.1/32")


@asynccontextmanager
async def serving(rec: Receiver) -> AsyncIterator[Receiver]:
    """``rec`` listening on loopback, at ``rec.url``."""
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    # A handler is cancelled when the sender gives up on its request (its timeout), so
    # ``in_flight`` counts what the sender has in flight, not what the server still holds.
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        if rec.release is not None:
            rec.release.set()
        await runner.cleanup()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebhookSenderSuite:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    @pytest.fixture
    async def receiver(self):
        async with serving(Receiver()) as rec:
            yield rec

    @pytest.fixture
    async def other_receiver(self):
        async with serving(Receiver()) as rec:
            yield rec

    @pytest.fixture
    async def hanging(self):
        """A receiver that answers nothing until the test ends (the sender's timeout ends
        each request)."""
        rec = Receiver()
        rec.release = asyncio.Event()
        async with serving(rec):
            yield rec

    @pytest.fixture
    def vault(self):
        return Vault([Fernet.generate_key().decode()])

    async def test_events_are_sent_signed_with_their_id(self, store, vault, receiver):
        await subscribe(store, vault, receiver.url)
        [delivery_id] = await publish(store)
        sender = WebhookSender(store, vault, FAST, egress=LOOPBACK)
        await asyncio.wait_for(sender.run(burst=True), 10)
        assert sender.sent == 1
        [(headers, body)] = receiver.requests
        payload = json.loads(body)
        assert payload["event"] == "delivery.published"
        assert payload["delivery_id"] == delivery_id
        assert payload["external_id"] == f"ext-{delivery_id}"
        assert headers[EVENT_ID_HEADER] == payload["id"]
        assert headers[EVENT_HEADER] == "delivery.published"
        assert headers["Content-Type"] == "application/json"
        assert verify(SECRET, body, headers[SIGNATURE_HEADER])
        assert await store.next_webhook_event_at() is None

    async def test_failures_are_retried_with_backoff_then_sent(self, store, vault, receiver):
        await subscribe(store, vault, receiver.url)
        await publish(store)
        receiver.statuses = [500, 503]
        registry = CollectorRegistry()
        sender = WebhookSender(store, vault, FAST, egress=LOOPBACK, registry=registry)
        await run_until(sender, lambda: sender.sent == 1)
        ids = [h[EVENT_ID_HEADER] for h, _ in receiver.requests]
        assert len(ids) == 3
        assert len(set(ids)) == 1  # the same event, at least once: receivers dedupe by id
        assert outcomes(registry) == {"delivered": 1.0, "failed": 2.0, "disabled": 0.0}

    async def test_an_event_is_given_up_after_max_attempts(self, store, vault, receiver):
        await subscribe(store, vault, receiver.url)
        await publish(store)
        receiver.statuses = [500] * 10
        sender = WebhookSender(store, vault, FAST, egress=LOOPBACK)
        await run_until(sender, lambda: sender.failed == 1)
        assert len(receiver.requests) == FAST.max_attempts
        assert await store.next_webhook_event_at() is None

    async def test_a_receiver_on_an_address_that_is_not_allowed_gets_nothing(
        self, store, vault, receiver
    ):
        """Registered when its name pointed elsewhere, or written by an older version: each
        send checks the address again, and a refused one is never connected to."""
        await subscribe(store, vault, receiver.url)
        await publish(store)
        sender = WebhookSender(store, vault, FAST)  # public addresses only
        await run_until(sender, lambda: sender.failed == 1)
        assert receiver.requests == []

    async def test_an_unreachable_receiver_is_retried(self, store, vault):
        await subscribe(store, vault, "http://127.0.0.1:9/nothing-listens-here")
        await publish(store)
        sender = WebhookSender(store, vault, FAST, egress=LOOPBACK)
        await run_until(sender, lambda: sender.failed == 1)

    async def test_events_of_a_deleted_webhook_are_dropped(self, store, vault, receiver):
        hook = await subscribe(store, vault, receiver.url)
        await publish(store)
        await store.delete_webhook(hook.id)
        sender = WebhookSender(store, vault, FAST, egress=LOOPBACK)
        await asyncio.wait_for(sender.run(burst=True), 10)
        assert receiver.requests == []
        assert await store.next_webhook_event_at() is None

    async def test_the_sender_sleeps_until_woken(self, store, vault, receiver):
        await subscribe(store, vault, receiver.url)
        slow_poll = FAST.model_copy(update={"idle_recheck_s": 60.0})
        sender = WebhookSender(store, vault, slow_poll, egress=LOOPBACK)
        task = asyncio.create_task(sender.run())
        try:
            await asyncio.wait_for(sender.idle.wait(), 5)  # asleep on an empty outbox
            await publish(store)
            sender.notify()
            await asyncio.wait_for(receiver.got_one.wait(), 5)  # far less than idle_recheck_s
        finally:
            sender.request_stop()
            await task

    async def test_concurrency_is_capped(self, store, vault, receiver):
        await subscribe(store, vault, receiver.url)
        await publish(store, 12)
        receiver.release = asyncio.Event()
        capped = FAST.model_copy(
            update={
                "concurrency": 4,
                "batch": 3,
                "endpoint_concurrency": 8,
                "workspace_concurrency": 4,
            }
        )
        sender = WebhookSender(store, vault, capped, egress=LOOPBACK)
        task = asyncio.create_task(sender.run(burst=True))
        await eventually(lambda: receiver.in_flight == 4)
        receiver.release.set()
        await asyncio.wait_for(task, 10)
        assert receiver.max_in_flight == 4
        assert sender.sent == 12

    async def test_the_store_going_away_delays_events_but_does_not_stop_the_sender(
        self, store, vault, receiver
    ):
        await subscribe(store, vault, receiver.url)
        await publish(store, 2)
        failing = {
            "claim_webhook_events": 2,
            "next_webhook_event_at": 2,
            "list_webhooks": 1,
            "settle_webhook_event": 2,
        }
        flaky = FlakyStore(store, failing)
        backoff = Backoff(base_s=0.01, cap_s=0.05)
        sender = WebhookSender(flaky, vault, FAST, store_backoff=backoff, egress=LOOPBACK)
        await asyncio.wait_for(sender.run(burst=True), 10)
        assert sender.sent == 2
        assert flaky.failures == failing
        ids = {h[EVENT_ID_HEADER] for h, _ in receiver.requests}
        assert len(ids) == 2
        assert await store.next_webhook_event_at() is None  # both settled once it answered

    async def test_each_receiver_gets_at_most_its_share_of_requests(self, store, vault, receiver):
        await subscribe(store, vault, receiver.url)
        await publish(store, 12)
        receiver.release = asyncio.Event()
        settings = FAST.model_copy(update={"concurrency": 8, "endpoint_concurrency": 3})
        sender = WebhookSender(store, vault, settings, egress=LOOPBACK)
        task = asyncio.create_task(sender.run(burst=True))
        await eventually(lambda: receiver.in_flight == 3)
        receiver.release.set()
        await asyncio.wait_for(task, 10)
        assert receiver.max_in_flight == 3
        assert sender.sent == 12

    async def test_a_dead_receiver_does_not_delay_another_workspace(
        self, store, vault, receiver, hanging
    ):
        """Workspace A has a receiver that never answers and one that refuses connections,
        and a flood of events for both; workspace B's event still goes out at once. (Taken in
        due order, B's event waited behind A's, ``timeout_s`` per round of the sender's
        concurrency: 29 s where 0.1 s was expected.)"""
        await subscribe(store, vault, hanging.url)
        await subscribe(store, vault, f"http://127.0.0.1:{closed_port()}/refused")
        b = await tenant(store)
        await subscribe(store, vault, receiver.url, workspace_id=b)
        await publish(store, 100)  # 200 events of A's, all due before B's
        settings = FAST.model_copy(update={"concurrency": 4, "shutdown_grace_s": 0.1})
        sender = WebhookSender(store, vault, settings, egress=LOOPBACK)
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(sender.run())
        try:
            await eventually(lambda: hanging.in_flight > 0)  # A's requests are hanging
            recorded = loop.time()
            await publish(store, 1, workspace_id=b)
            sender.notify()  # as the engine does when it records events
            await asyncio.wait_for(receiver.got_one.wait(), 5)
            waited = loop.time() - recorded
        finally:
            sender.request_stop()
            await task
        assert waited < 1.0
        assert len(receiver.requests) == 1
        # A's dead receiver never held more than its share of the sender's concurrency.
        assert hanging.max_in_flight <= settings.endpoint_concurrency

    async def test_many_workspaces_dead_receivers_share_what_one_workspace_gets(
        self, store, vault, receiver, hanging
    ):
        """Four workspaces whose receivers never answer: once each has failed, their probes
        together hold at most one workspace's share, and a fifth workspace's event goes out
        at once (one probe each would fill the sender)."""
        settings = FAST.model_copy(
            update={"concurrency": 4, "timeout_s": 0.5, "shutdown_grace_s": 0.1}
        )
        dead = [await tenant(store) for _ in range(4)]
        hooks = [await subscribe(store, vault, hanging.url, workspace_id=ws) for ws in dead]
        for ws in dead:
            await publish(store, 10, workspace_id=ws)
        b = await tenant(store)
        await subscribe(store, vault, receiver.url, workspace_id=b)
        sender = WebhookSender(store, vault, settings, egress=LOOPBACK)
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(sender.run())

        async def all_failing() -> bool:
            found = [w for ws in dead for w in await store.list_webhooks(ws)]
            return all(w.failing_since is not None for w in found)

        try:
            await eventually(all_failing)  # one timeout each: every receiver is failing
            # Requests claimed before their webhook was failing end within one timeout; from
            # then on only probes go out.
            await eventually(lambda: hanging.in_flight <= settings.workspace_share)
            hanging.max_in_flight = hanging.in_flight
            recorded = loop.time()
            await publish(store, 1, workspace_id=b)
            sender.notify()
            await asyncio.wait_for(receiver.got_one.wait(), 5)
            waited = loop.time() - recorded
            probed = len(hanging.requests)
            # Watch a few rounds of probes: a probe each would put all four in flight.
            await eventually(lambda: len(hanging.requests) >= probed + 8)
        finally:
            sender.request_stop()
            await task
        assert waited < 1.0
        assert hanging.max_in_flight <= settings.workspace_share
        assert len(hooks) > settings.workspace_share

    async def test_a_receiver_that_keeps_failing_is_disabled_its_events_kept(
        self, store, vault, receiver, other_receiver, caplog
    ):
        """Disabled with a reason, a log line and a ``webhook.disabled`` event to the other
        webhooks; its events, old and new, are kept and go out once it is enabled again; one
        given up before is sent by a replay."""
        failing = await subscribe(store, vault, receiver.url)
        await subscribe(store, vault, other_receiver.url, events=(WEBHOOK_DISABLED,))
        receiver.statuses = [500] * 100

        registry = CollectorRegistry()

        def sender_with(seen: CollectorRegistry | None = None, **changes: object) -> WebhookSender:
            settings = FAST.model_copy(update=changes)
            return WebhookSender(store, vault, settings, egress=LOOPBACK, registry=seen)

        async def burst(**changes: object) -> None:
            await asyncio.wait_for(sender_with(**changes).run(burst=True), 10)

        # An event that uses its one attempt: given up, kept as failed (failure 1 in a row).
        await publish(store, 1)
        await burst(max_attempts=1, disable_after_failures=0)
        [given_up] = await store.list_webhook_events(failing.id, state=WebhookEventState.FAILED)
        # Two more, failing on: disabled at the third failure in a row.
        await publish(store, 2)
        sender = sender_with(
            registry, max_attempts=10, disable_after_failures=3, disable_after_s=0.0
        )
        with caplog.at_level(logging.WARNING, logger="herald.webhooks"):
            await run_until(sender, lambda: len(other_receiver.requests) == 1)
        tried = len(receiver.requests)
        assert tried >= 3  # (one claimed while it was being disabled may still go out)
        [(_, body)] = other_receiver.requests
        notice = json.loads(body)
        assert notice["event"] == WEBHOOK_DISABLED
        assert notice["webhook_id"] == failing.id
        assert "in a row" in notice["reason"]
        assert "HTTP 500" in notice["reason"]
        [hook] = [w for w in await store.list_webhooks(DEFAULT_WORKSPACE) if w.id == failing.id]
        assert hook.disabled_at is not None
        assert hook.disabled_reason == notice["reason"]
        assert [r.webhook_id for r in caplog.records if r.msg == "webhook.disabled"] == [failing.id]
        assert outcomes(registry)["disabled"] == 1.0
        # Its events are kept, and a new one too; nothing is sent to it.
        await publish(store, 1)
        states = sorted(r.state for r in await store.list_webhook_events(failing.id))
        assert states == ["failed", "pending", "pending", "pending"]
        await burst()
        assert len(receiver.requests) == tried
        # Enabled again: the kept events go out; the one given up goes out when replayed.
        receiver.statuses.clear()
        await store.enable_webhook(failing.id)
        await burst()
        assert len(receiver.requests) == tried + 3
        assert await store.replay_webhook_event(given_up.event.id, at=utcnow())
        await burst()
        assert receiver.requests[-1][0][EVENT_ID_HEADER] == given_up.event.id
        sent = await store.list_webhook_events(failing.id, state=WebhookEventState.SENT)
        assert len(sent) == 4
