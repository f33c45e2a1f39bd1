"""Writes are safe to retry: ``Idempotency-Key`` (docs/api.md, "Retrying writes").

The app runs on the API tests' SQLite store, whose ``add_posts`` a test can hold (a request in
flight, a client that timed out), before or after its write, or make fail once (the store went
away mid-request, before or after the write committed), and on a clock the test moves (keys
expire, locks run out). tests/integration/test_postgres_idempotency.py runs two apps on one
PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from herald.api import create_app
from herald.api.idempotency import fingerprint
from herald.domain import ChannelStatus, Delivery, NewPost, Platform, Transition, utcnow
from herald.errors import StoreUnavailable
from herald.platforms.rules import VALIDATORS
from herald.stores.sqlite import SQLiteStore
from herald.testing import FakeConnector, FakePlatform, eventually, memory_engine
from tests.api.conftest import Tenant, assert_problem, later

TTL_S, LOCK_S = 3600.0, 30.0
KEY = "Idempotency-Key"
HOOK = {"url": "https://hooks.example/h", "events": ["delivery.published"]}
REPLAYED = "Idempotency-Replayed"


def _open() -> asyncio.Event:
    gate = asyncio.Event()
    gate.set()
    return gate


class GatedStore(SQLiteStore):
    """The API's store, whose ``add_posts`` waits at ``gate`` (set: open) before its write and
    at ``after_gate`` after it, and fails once when asked: before its write (``fail_next``),
    or after it committed (``fail_after_write``: the connection lost with the COMMIT's
    answer). Its reads of deliveries fail once after a guarded write when asked
    (``fail_read_after_apply``); keeping an answer fails (``fail_finish``) or waits at
    ``finish_gate``. ``held``: gates the next calls of ``add_posts`` wait at, one each (the
    later ones go through). ``fail_once``: channel writes that fail once, before writing."""

    def __init__(self, path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.gate, self.after_gate, self.finish_gate = _open(), _open(), _open()
        self.entered, self.written, self.finishing = (asyncio.Event() for _ in range(3))
        self.fail_next = self.fail_after_write = self.fail_finish = False
        self.fail_read_after_apply = self.applied = False
        self.held: list[asyncio.Event] = []
        self.fail_once: set[str] = set()

    def _maybe_fail(self, write: str) -> None:
        if write in self.fail_once:
            self.fail_once.remove(write)
            raise StoreUnavailable("sqlite: the database went away")

    async def add_channels(self, *args: Any, **kwargs: Any) -> None:
        self._maybe_fail("add_channels")
        await super().add_channels(*args, **kwargs)

    async def set_channel_secret(self, *args: Any) -> None:
        self._maybe_fail("set_channel_secret")
        await super().set_channel_secret(*args)

    async def set_channel_status(self, *args: Any, **kwargs: Any) -> None:
        self._maybe_fail("set_channel_status")
        await super().set_channel_status(*args, **kwargs)

    async def add_posts(self, posts: Sequence[NewPost]) -> list[Delivery]:
        self.entered.set()
        await self.gate.wait()
        if self.held:
            await self.held.pop(0).wait()
        if self.fail_next:
            self.fail_next = False
            raise StoreUnavailable("sqlite: the database went away")
        created = await super().add_posts(posts)
        self.written.set()
        await self.after_gate.wait()
        if self.fail_after_write:
            self.fail_after_write = False
            raise StoreUnavailable("sqlite: the database went away")
        return created

    async def apply(self, transitions: Sequence[Transition]) -> list[bool]:
        done = await super().apply(transitions)
        self.applied = True
        return done

    async def deliveries_of(self, post_ids: Sequence[str]) -> dict[str, list[Delivery]]:
        if self.fail_read_after_apply and self.applied:
            self.fail_read_after_apply = False
            raise StoreUnavailable("sqlite: the database went away")
        return await super().deliveries_of(post_ids)

    async def finish_idempotent(self, *args: Any) -> bool:
        self.finishing.set()
        await self.finish_gate.wait()
        if self.fail_finish:
            raise StoreUnavailable("sqlite: the database went away")
        return await super().finish_idempotent(*args)


@pytest.fixture
def settings(settings):
    api = settings.api.model_copy(update={"idempotency_ttl_s": TTL_S, "idempotency_lock_s": LOCK_S})
    return settings.model_copy(update={"api": api})


@pytest.fixture
async def api_store(tmp_path) -> AsyncIterator[GatedStore]:
    store = GatedStore(tmp_path / "api.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def now() -> list:
    """The app's clock: ``now[0]``, moved by the tests."""
    return [utcnow()]


@pytest.fixture
def app(settings, api_store, now):
    return create_app(settings, api_store, validators=VALIDATORS, clock=lambda: now[0])


async def send(
    tenant: Tenant, url: str, body: Any = None, *, key: str | None, method: str = "POST"
) -> httpx.Response:
    headers = dict(tenant.headers)
    if key is not None:
        headers[KEY] = key
    return await tenant.client.request(method, url, json=body, headers=headers)


def post_body(channel: dict, text: str = "Hello", **fields: Any) -> dict:
    return {
        "channel_ids": [channel["id"]],
        "content": {"text": text},
        "scheduled_at": fields.pop("scheduled_at", later(hours=3)),
        **fields,
    }


async def posts_of(api_store, tenant: Tenant) -> list:
    return await api_store.list_posts(tenant.workspace_id, limit=100)


# -- a retry is answered as the first request, and does nothing ------------------------------
async def test_a_retry_after_a_timeout_creates_one_post_which_publishes_once(api_store, tenant):
    channel = await tenant.channel(Platform.FACEBOOK)
    body = post_body(channel, scheduled_at=utcnow().isoformat())
    api_store.gate.clear()
    first = asyncio.create_task(send(tenant, "/v1/posts", body, key="order-1"))
    await asyncio.wait_for(api_store.entered.wait(), 5)
    # The client gave up waiting and retries while the first request is still being done.
    busy = await send(tenant, "/v1/posts", body, key="order-1")
    problem = assert_problem(busy, 409)
    assert problem["type"] == "urn:herald:problem:idempotency-key-in-use"
    assert busy.headers["Retry-After"] == "1"
    api_store.gate.set()
    created = await first
    assert created.status_code == 201, created.text
    assert REPLAYED not in created.headers
    retry = await send(tenant, "/v1/posts", body, key="order-1")
    assert retry.status_code == 201
    assert retry.headers[REPLAYED] == "true"
    assert retry.content == created.content
    assert retry.headers["Location"] == created.headers["Location"]
    assert retry.headers["Content-Type"] == created.headers["Content-Type"]
    assert [p.id for p in await posts_of(api_store, tenant)] == [created.json()["id"]]
    # And the engine publishes it once.
    world = FakePlatform()
    engine = memory_engine(
        {Platform.FACEBOOK: FakeConnector(Platform.FACEBOOK, world)}, store=api_store
    )
    await asyncio.wait_for(engine.run(burst=True), 30)
    assert world.published() == 1


async def test_requests_with_one_key_at_once_do_the_work_once(api_store, tenant):
    channel = await tenant.channel()
    body = post_body(channel)
    api_store.gate.clear()
    sends = [asyncio.create_task(send(tenant, "/v1/posts", body, key="k")) for _ in range(5)]
    await asyncio.wait_for(api_store.entered.wait(), 5)
    await eventually(lambda: sum(t.done() for t in sends) == 4)
    api_store.gate.set()
    answers = await asyncio.gather(*sends)
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409, 409]
    assert len(await posts_of(api_store, tenant)) == 1
    # Without holding anyone: whoever comes after the first answer gets it again.
    answers = await asyncio.gather(*(send(tenant, "/v1/posts", body, key="k2") for _ in range(5)))
    fresh = [a for a in answers if a.status_code == 201 and REPLAYED not in a.headers]
    assert len(fresh) == 1
    assert {a.status_code for a in answers} <= {201, 409}
    for a in answers:
        if a.headers.get(REPLAYED) == "true":
            assert a.content == fresh[0].content
    assert len(await posts_of(api_store, tenant)) == 2


async def test_every_kind_of_write_is_replayed_without_being_done_again(api_store, tenant):
    channel = await tenant.channel()
    post = await tenant.post_on([channel])
    url = f"/v1/posts/{post['id']}/reschedule"
    moved = {"scheduled_at": later(hours=5)}
    first = await send(tenant, url, moved, key="move")
    assert first.status_code == 200, first.text
    # The post changes meanwhile; the retry still gets the first answer, and moves nothing.
    await tenant.post(url, {"scheduled_at": later(hours=7)})
    again = await send(tenant, url, moved, key="move")
    assert (again.status_code, again.content) == (200, first.content)
    assert again.headers[REPLAYED] == "true"
    detail = (await tenant.get(f"/v1/posts/{post['id']}")).json()
    assert detail["deliveries"][0]["scheduled_at"] != first.json()["deliveries"][0]["scheduled_at"]
    # A delete: the retry answers 204 as the first did, not 404.
    hook = (await tenant.post("/v1/webhooks", HOOK)).json()
    for _ in range(2):
        gone = await send(tenant, f"/v1/webhooks/{hook['id']}", key="unhook", method="DELETE")
        assert (gone.status_code, gone.content) == (204, b"")
    assert gone.headers[REPLAYED] == "true"


async def test_a_new_api_key_is_shown_again_to_the_retry_and_kept_encrypted(api_store, tenant):
    first = await send(tenant, "/v1/api-keys", {"name": "ci"}, key="new-key")
    again = await send(tenant, "/v1/api-keys", {"name": "ci"}, key="new-key")
    assert first.status_code == again.status_code == 201
    assert again.json()["key"] == first.json()["key"]
    assert len((await tenant.get("/v1/api-keys")).json()) == 2  # the first one, and this one
    secret = first.json()["key"].encode()
    bodies = await api_store._reader.run(
        lambda c: [bytes(r[0]) for r in c.execute("SELECT body FROM idempotency_keys")]
    )
    assert len(bodies) == 1
    assert secret not in bodies[0]


async def test_a_replay_carries_the_current_rate_limit_headers(settings, api_store, tenant, now):
    limited = settings.api.model_copy(update={"key_requests_per_s": 1.0, "key_burst": 10})
    app = create_app(
        settings.model_copy(update={"api": limited}),
        api_store,
        validators=VALIDATORS,
        clock=lambda: now[0],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        paced = Tenant(tenant.workspace_id, tenant.token, client)
        first = await send(paced, "/v1/webhooks", HOOK, key="k")
        again = await send(paced, "/v1/webhooks", HOOK, key="k")
    assert again.headers[REPLAYED] == "true"
    assert first.headers["RateLimit-Remaining"] == "9"
    assert again.headers["RateLimit-Remaining"] == "8"


async def test_an_answer_kept_under_a_dropped_secret_key_is_refused_not_redone(
    settings, api_store, tenant
):
    assert (await send(tenant, "/v1/webhooks", HOOK, key="k")).status_code == 201
    rotated = settings.model_copy(update={"secret_keys": [Fernet.generate_key().decode()]})
    app = create_app(rotated, api_store, validators=VALIDATORS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        again = await send(
            Tenant(tenant.workspace_id, tenant.token, client), "/v1/webhooks", HOOK, key="k"
        )
    assert_problem(again, 409, field=KEY)
    assert len((await tenant.get("/v1/webhooks")).json()) == 1


# -- one key, one request --------------------------------------------------------------------
async def test_a_key_used_again_for_another_request_is_refused(api_store, tenant):
    channel = await tenant.channel()
    assert (await send(tenant, "/v1/posts", post_body(channel), key="k")).status_code == 201
    other_body = await send(tenant, "/v1/posts", post_body(channel, "Bye"), key="k")
    problem = assert_problem(other_body, 422, field=KEY)
    assert problem["type"] == "urn:herald:problem:idempotency-key-reused"
    assert "another request" in problem["detail"]
    other_route = await send(tenant, "/v1/webhooks", HOOK, key="k")
    assert_problem(other_route, 422, field=KEY)
    assert len(await posts_of(api_store, tenant)) == 1
    assert (await tenant.get("/v1/webhooks")).json() == []


async def test_keys_belong_to_their_workspace(tenant, other):
    mine = await send(tenant, "/v1/webhooks", HOOK, key="same")
    theirs = await send(other, "/v1/webhooks", HOOK, key="same")
    assert mine.status_code == theirs.status_code == 201
    assert REPLAYED not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert [w["id"] for w in (await other.get("/v1/webhooks")).json()] == [theirs.json()["id"]]


@pytest.mark.parametrize(
    "value", ["", " ", " x", "x ", "x" * 256, b"caf\xc3\xa9", "tab\there"], ids=repr
)
async def test_a_malformed_key_is_refused_before_anything_is_done(tenant, value):
    headers = {**tenant.headers, KEY: value}
    answer = await tenant.client.post("/v1/webhooks", json=HOOK, headers=headers)
    assert_problem(answer, 422, field=KEY)
    assert (await tenant.get("/v1/webhooks")).json() == []


async def test_a_key_of_255_printable_characters_is_taken_and_two_keys_are_refused(tenant):
    longest = "!" + "".join(chr(32 + i % 95) for i in range(254))  # every printable one
    ok = await send(tenant, "/v1/webhooks", HOOK, key=longest)
    assert ok.status_code == 201, ok.text
    headers = [("Authorization", tenant.headers["Authorization"]), (KEY, "a"), (KEY, "b")]
    two = await tenant.client.post("/v1/webhooks", json=HOOK, headers=headers)
    assert_problem(two, 422, field=KEY)


# -- failures free the key; time frees it too ------------------------------------------------
async def test_a_refused_request_leaves_the_key_free(tenant):
    first = await tenant.channel(external_id="page-1")
    again = {
        "platform": "facebook",
        "external_id": "page-1",
        "name": "Page",
        "timezone": "Europe/Paris",
        "credentials": {"access_token": "t"},
    }
    refused = await send(tenant, "/v1/channels", again, key="connect")
    assert_problem(refused, 409)
    await tenant.delete(f"/v1/channels/{first['id']}")
    # Not a stored "no": the same request, once it can succeed, does.
    done = await send(tenant, "/v1/channels", again, key="connect")
    assert done.status_code == 201, done.text
    assert REPLAYED not in done.headers
    # An invalid body is not pinned to its key either: corrected, it goes through.
    invalid = await send(tenant, "/v1/webhooks", {**HOOK, "events": ["nope"]}, key="hook")
    assert_problem(invalid, 422, field="events[0]")
    assert (await send(tenant, "/v1/webhooks", HOOK, key="hook")).status_code == 201


async def test_a_request_that_failed_leaves_the_key_free(api_store, tenant):
    channel = await tenant.channel()
    body = post_body(channel)
    api_store.fail_next = True
    failed = await send(tenant, "/v1/posts", body, key="k")
    assert_problem(failed, 503)
    done = await send(tenant, "/v1/posts", body, key="k")
    assert done.status_code == 201
    assert REPLAYED not in done.headers
    assert len(await posts_of(api_store, tenant)) == 1


async def test_a_key_held_by_a_request_that_died_is_free_after_the_lock(api_store, tenant, now):
    channel = await tenant.channel()
    raw = json.dumps(post_body(channel)).encode()
    # A process claimed the key for this very request, then died before answering.
    at = now[0]
    claimed = await api_store.begin_idempotent(
        tenant.workspace_id,
        "k",
        fingerprint("POST", "/v1/posts", "", raw),
        now=at,
        locked_until=at + timedelta(seconds=LOCK_S),
        expires_at=at + timedelta(seconds=TTL_S),
    )
    assert claimed.token
    headers = {**tenant.headers, KEY: "k", "Content-Type": "application/json"}
    busy = await tenant.client.post("/v1/posts", content=raw, headers=headers)
    assert_problem(busy, 409)
    now[0] = at + timedelta(seconds=LOCK_S)
    done = await tenant.client.post("/v1/posts", content=raw, headers=headers)
    assert done.status_code == 201, done.text
    assert len(await posts_of(api_store, tenant)) == 1


async def test_a_key_expires_after_its_time_and_expired_keys_are_purged(api_store, tenant, now):
    channel = await tenant.channel()
    body = post_body(channel, scheduled_at=later(hours=5))
    start = now[0]
    first = await send(tenant, "/v1/posts", body, key="k")
    now[0] = start + timedelta(seconds=TTL_S - 1)
    assert (await send(tenant, "/v1/posts", body, key="k")).headers[REPLAYED] == "true"
    now[0] = start + timedelta(seconds=TTL_S)
    fresh = await send(tenant, "/v1/posts", body, key="k")
    assert fresh.status_code == 201
    assert REPLAYED not in fresh.headers
    assert fresh.json()["id"] != first.json()["id"]
    # The expired row went with the purge that ran after that write's answer (then the key
    # was claimed anew): nothing is left to purge at that time.
    assert await api_store.purge_idempotency(now[0], limit=10) == 0
    assert (await send(tenant, "/v1/posts", body, key="k")).headers[REPLAYED] == "true"


# -- a write is never done twice: the key is tied to the write's own transaction --------------
def held_write(api_store) -> asyncio.Event:
    """Hold the next ``add_posts`` before its write, until the returned gate is set."""
    gate = asyncio.Event()
    api_store.held.append(gate)
    return gate


async def test_a_request_slower_than_the_lock_cannot_write_once_a_retry_took_the_key_over(
    api_store, tenant, now
):
    channel = await tenant.channel()
    body = post_body(channel)
    gate = held_write(api_store)
    slow = asyncio.create_task(send(tenant, "/v1/posts", body, key="k"))
    await asyncio.wait_for(api_store.entered.wait(), 5)
    # The first request is still on its way to its write when its lock runs out: the retry
    # takes the key over and does the work...
    now[0] += timedelta(seconds=LOCK_S)
    retry = await send(tenant, "/v1/posts", body, key="k")
    assert retry.status_code == 201, retry.text
    # ...and the first one's write is refused: it no longer holds the key.
    gate.set()
    problem = assert_problem(await slow, 409, field=KEY)
    assert problem["type"] == "urn:herald:problem:idempotency-key-taken-over"
    assert [p.id for p in await posts_of(api_store, tenant)] == [retry.json()["id"]]
    again = await send(tenant, "/v1/posts", body, key="k")
    assert (again.headers[REPLAYED], again.content) == ("true", retry.content)


async def test_an_api_process_whose_clock_runs_ahead_cannot_make_a_write_happen_twice(
    settings, api_store, tenant, now
):
    """Processes whose clocks disagree by more than the lock: the one ahead takes over a key
    another is still working on; the other's write is then refused, never done as well."""
    skew = timedelta(seconds=LOCK_S + 1)
    ahead = create_app(settings, api_store, validators=VALIDATORS, clock=lambda: now[0] + skew)
    channel = await tenant.channel()
    body = post_body(channel)
    gate = held_write(api_store)
    slow = asyncio.create_task(send(tenant, "/v1/posts", body, key="k"))
    await asyncio.wait_for(api_store.entered.wait(), 5)
    transport = httpx.ASGITransport(app=ahead)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        taken = await send(
            Tenant(tenant.workspace_id, tenant.token, client), "/v1/posts", body, key="k"
        )
    assert taken.status_code == 201, taken.text
    gate.set()
    assert_problem(await slow, 409, field=KEY)
    assert len(await posts_of(api_store, tenant)) == 1


async def test_a_write_whose_answer_could_not_be_kept_is_never_done_again(api_store, tenant, now):
    channel = await tenant.channel()
    body = post_body(channel)
    api_store.fail_finish = True
    first = await send(tenant, "/v1/posts", body, key="k")
    assert first.status_code == 201, first.text  # the answer still goes out: the work was done
    api_store.fail_finish = False
    assert_problem(await send(tenant, "/v1/posts", body, key="k"), 409)  # it may still be kept
    # Long after: the request is over, its answer lost. A retry is told so; nothing is redone.
    now[0] += timedelta(seconds=LOCK_S)
    retry = await send(tenant, "/v1/posts", body, key="k")
    problem = assert_problem(retry, 409, field=KEY)
    assert problem["type"] == "urn:herald:problem:idempotency-key-answer-lost"
    assert "read the resource" in problem["detail"]
    assert [p.id for p in await posts_of(api_store, tenant)] == [first.json()["id"]]


async def test_a_request_still_answering_past_its_lock_after_its_write_is_not_done_again(
    api_store, tenant, now
):
    """As when its process died after the write: the work committed, so it is never redone;
    and the answer, once kept, is what retries get."""
    channel = await tenant.channel()
    body = post_body(channel)
    api_store.after_gate.clear()
    slow = asyncio.create_task(send(tenant, "/v1/posts", body, key="k"))
    await asyncio.wait_for(api_store.written.wait(), 5)
    now[0] += timedelta(seconds=LOCK_S)
    problem = assert_problem(await send(tenant, "/v1/posts", body, key="k"), 409, field=KEY)
    assert problem["type"] == "urn:herald:problem:idempotency-key-answer-lost"
    api_store.after_gate.set()
    first = await slow
    assert first.status_code == 201, first.text
    again = await send(tenant, "/v1/posts", body, key="k")
    assert (again.headers[REPLAYED], again.content) == ("true", first.content)
    assert len(await posts_of(api_store, tenant)) == 1


async def test_a_write_that_committed_before_its_request_failed_is_not_done_again(
    api_store, tenant
):
    """The COMMIT went through but its answer was lost with the connection: the request
    fails (503), and its retry is told the work was done instead of doing it again."""
    channel = await tenant.channel()
    body = post_body(channel)
    api_store.fail_after_write = True
    assert_problem(await send(tenant, "/v1/posts", body, key="k"), 503)
    retry = await send(tenant, "/v1/posts", body, key="k")
    problem = assert_problem(retry, 409, field=KEY)
    assert problem["type"] == "urn:herald:problem:idempotency-key-answer-lost"
    assert len(await posts_of(api_store, tenant)) == 1


async def test_a_request_that_failed_reading_back_after_its_write_is_not_done_again(
    api_store, tenant
):
    channel = await tenant.channel()
    post = await tenant.post_on([channel])
    url = f"/v1/posts/{post['id']}/reschedule"
    moved = {"scheduled_at": later(hours=5)}
    api_store.fail_read_after_apply = True
    assert_problem(await send(tenant, url, moved, key="move"), 503)
    problem = assert_problem(await send(tenant, url, moved, key="move"), 409, field=KEY)
    assert problem["type"] == "urn:herald:problem:idempotency-key-answer-lost"
    detail = (await tenant.get(f"/v1/posts/{post['id']}")).json()
    assert detail["deliveries"][0]["scheduled_at"] != post["deliveries"][0]["scheduled_at"]


@pytest.mark.parametrize("failing", ["add_channels", "set_channel_secret", "set_channel_status"])
async def test_connecting_a_channel_is_one_write_that_leaves_nothing_half_done(
    api_store, tenant, failing
):
    """Whichever store write fails, the same request again connects the channel, active and
    with its credentials: never a channel left without them, nor an account refused as taken
    by its own half-made channel."""
    api_store.fail_once.add(failing)
    body = {
        "platform": "facebook",
        "external_id": "page-1",
        "name": "Page",
        "timezone": "Europe/Paris",
        "credentials": {"access_token": "t"},
    }
    first = await send(tenant, "/v1/channels", body, key="connect")
    retry = await send(tenant, "/v1/channels", body, key="connect")
    assert retry.status_code == 201, retry.text
    (channel,) = await api_store.list_channels(tenant.workspace_id)
    assert (channel.id, channel.status) == (retry.json()["id"], ChannelStatus.ACTIVE)
    assert await api_store.get_channel_secret(channel.id) is not None
    if first.status_code == 201:
        assert retry.headers[REPLAYED] == "true"


async def test_a_workspace_deleted_with_a_key_takes_the_key_with_it(api_store, tenant):
    """The erasure marks the key, then erases it with the rest: its answer has nowhere to be
    kept, and the retry cannot even authenticate."""
    url = f"/v1/workspace?confirm={tenant.workspace_id}"
    gone = await send(tenant, url, key="bye", method="DELETE")
    assert gone.status_code == 204, gone.text
    assert_problem(await send(tenant, url, key="bye", method="DELETE"), 401)
    rows = await api_store._reader.run(
        lambda c: c.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0]
    )
    assert rows == 0


async def let_cancellation_arrive() -> None:
    """A few turns of the loop: a task cancelled is told at its next turn."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_request_cancelled_after_its_write_does_not_give_its_key_up(api_store, tenant):
    channel = await tenant.channel()
    body = post_body(channel)
    api_store.after_gate.clear()
    first = asyncio.create_task(send(tenant, "/v1/posts", body, key="k"))
    await asyncio.wait_for(api_store.written.wait(), 5)
    first.cancel()  # a server cutting the request short, a timeout around it
    with pytest.raises(asyncio.CancelledError):
        await first
    api_store.after_gate.set()
    problem = assert_problem(await send(tenant, "/v1/posts", body, key="k"), 409, field=KEY)
    assert problem["type"] == "urn:herald:problem:idempotency-key-answer-lost"
    assert len(await posts_of(api_store, tenant)) == 1


async def test_a_request_cancelled_while_its_answer_is_kept_still_keeps_it(api_store, tenant):
    channel = await tenant.channel()
    body = post_body(channel)
    api_store.finish_gate.clear()
    first = asyncio.create_task(send(tenant, "/v1/posts", body, key="k"))
    await asyncio.wait_for(api_store.finishing.wait(), 5)
    first.cancel()
    await let_cancellation_arrive()
    api_store.finish_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    retry = await send(tenant, "/v1/posts", body, key="k")
    assert retry.status_code == 201, retry.text
    assert retry.headers[REPLAYED] == "true"
    assert len(await posts_of(api_store, tenant)) == 1


# -- which routes -----------------------------------------------------------------------------
HONOURING = {
    ("post", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{key_id}"),
    ("delete", "/v1/workspace"),
    ("post", "/v1/webhooks/{webhook_id}/enable"),
    ("post", "/v1/webhooks/{webhook_id}/events/{event_id}/replay"),
    ("post", "/v1/channels"),
    ("patch", "/v1/channels/{channel_id}"),
    ("delete", "/v1/channels/{channel_id}"),
    ("put", "/v1/channels/{channel_id}/schedule"),
    ("post", "/v1/posts"),
    ("post", "/v1/posts/import"),
    ("post", "/v1/posts/{post_id}/cancel"),
    ("post", "/v1/posts/{post_id}/reschedule"),
    ("post", "/v1/deliveries/{delivery_id}/retry"),
    ("post", "/v1/deliveries/{delivery_id}/cancel"),
    ("post", "/v1/webhooks"),
    ("delete", "/v1/webhooks/{webhook_id}"),
}


async def test_every_write_declares_the_header_and_no_read_does(client):
    schema = (await client.get("/openapi.json")).json()
    declared = set()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            if KEY in names:
                declared.add((method, path))
                assert {"409", "422"} <= operation["responses"].keys()
    assert declared == HONOURING
    writes = {
        (m, p)
        for p, ops in schema["paths"].items()
        for m in ops
        if m in ("post", "put", "patch", "delete")
    }
    assert writes == HONOURING
