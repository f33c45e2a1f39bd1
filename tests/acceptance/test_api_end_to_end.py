"""Herald as a client sees it: the API, the engine and the webhook sender against the simulator.

A workspace and its key come from ``herald admin create-workspace``; channels on the four
platforms are connected with the simulator's credentials; posts are scheduled as UTC instants,
as wall times in several zones, into posting slots, and by a CSV import of 1,000 rows. The
engine then runs (burst) with the webhook sender beside it. The API must show every delivery
published, the simulator's audit must agree (nothing lost, nothing twice, no limit broken),
and a receiver must get one signed ``delivery.published`` event per delivery.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiohttp import web
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from herald.api import create_app
from herald.bootstrap import run_publishing, running_engine, webhook_sender
from herald.cli import app as cli_app
from herald.config import Settings
from herald.domain import Platform, utcnow
from herald.platforms.rules import VALIDATORS
from herald.service.webhook_sender import EVENT_ID_HEADER, SIGNATURE_HEADER, verify
from herald.simulator import LatencyModel, Simulator, SimulatorConfig
from herald.testing.waiting import eventually
from tests.integration.pipeline import FAST_ENGINE

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CSV_ROWS = 1000
LIMITS: dict[str, dict[str, Any]] = {
    "instagram": {"publishes_per_24h": 10_000, "containers_per_24h": 40_000},
    "linkedin": {"member_posts_per_day": 10_000},
    "youtube": {"insert_calls_per_day": 10_000},
}
ZONES = {
    "fb_paris": (Platform.FACEBOOK, "Europe/Paris"),
    "fb_newyork": (Platform.FACEBOOK, "America/New_York"),
    "instagram": (Platform.INSTAGRAM, "Asia/Tokyo"),
    "linkedin": (Platform.LINKEDIN, "Europe/London"),
    "youtube": (Platform.YOUTUBE, "America/Los_Angeles"),
}
# Rows of the CSV import go to these channels in turn (few YouTube uploads: they are heavy).
CSV_CYCLE = [
    "fb_paris",
    "fb_newyork",
    "linkedin",
    "fb_paris",
    "instagram",
    "linkedin",
    "fb_newyork",
    "instagram",
    "youtube",
    "fb_paris",
]


class Receiver:
    def __init__(self) -> None:
        self.events: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.events.append((dict(request.headers), await request.read()))
        return web.Response(status=204)


@pytest.fixture
async def receiver():
    rec = Receiver()
    application = web.Application()
    application.router.add_post("/herald", rec.handle)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/herald"
    yield rec
    await runner.cleanup()


@pytest.fixture
async def sim():
    config = SimulatorConfig.from_settings(
        Settings(**LIMITS), latency=LatencyModel(median_s=0.001, p99_s=0.005), seed=5
    )
    async with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
def settings(sim, database_url) -> Settings:
    raw: dict[str, Any] = {name: dict(values) for name, values in sim.settings_overrides().items()}
    for name, values in LIMITS.items():
        raw[name].update(values)
    raw["instagram"].update({"poll_initial_s": 0.05, "poll_max_s": 0.2})
    return Settings(
        database_url=database_url,
        secret_keys=[Fernet.generate_key().decode()],
        engine=dict(FAST_ENGINE),
        **raw,
    )


async def admin_create_workspace(database_url: str) -> str:
    """``herald admin create-workspace``, as an operator runs it; the key is its last line."""
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli_app,
        ["admin", "create-workspace", "Agency", "--database-url", database_url],
    )
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def next_minute(at: datetime, *, at_least_s: float = 5.0) -> datetime:
    start = at + timedelta(seconds=at_least_s)
    return start.replace(second=0, microsecond=0) + timedelta(minutes=1)


def wall(instant: datetime, zone: str) -> str:
    return instant.astimezone(ZoneInfo(zone)).replace(tzinfo=None).isoformat(timespec="seconds")


class Client:
    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, url: str, expect: int, **kw: Any) -> Any:
        headers = {**self.headers, **kw.pop("headers", {})}
        response = await self.http.request(method, url, headers=headers, **kw)
        assert response.status_code == expect, response.text
        return response.json() if response.content and expect != 204 else None


async def test_api_engine_and_webhooks_end_to_end(
    sim, settings, database_url, acceptance_store, receiver
):
    token = await admin_create_workspace(database_url)
    app = create_app(settings, acceptance_store, validators=VALIDATORS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as http:
        api = Client(http, token)
        channels = await connect_channels(api, sim)
        hook = await api.call(
            "POST",
            "/v1/webhooks",
            201,
            json={"url": receiver.url, "events": ["delivery.published"]},
        )
        slot_at = await schedule_slots(api, channels)
        expected, slotted = await schedule_posts(api, sim, channels, slot_at)
        imported = await import_csv(api, sim, channels)
        assert imported == CSV_ROWS

        async with running_engine(settings, acceptance_store) as engine:
            sender = webhook_sender(settings, acceptance_store, engine)
            horizon = (slot_at - utcnow()).total_seconds() + 30
            await asyncio.wait_for(
                run_publishing(engine, sender, burst=True, burst_horizon_s=horizon), 240
            )

        deliveries = await every_delivery(api)
        assert len(deliveries) == expected + CSV_ROWS
        states = {d["status"] for d in deliveries.values()}
        assert states == {"published"}, [
            d for d in deliveries.values() if d["status"] != "published"
        ][:3]
        for delivery_id in slotted:  # each channel got its own slot, at the expected instant
            assert deliveries[delivery_id]["scheduled_at"] == slot_at.isoformat().replace(
                "+00:00", "Z"
            )

    audit = sim.audit.summary()
    assert audit["duplicates"] == 0
    assert audit["limit_violations"] == 0
    assert audit["posts"] == len(deliveries)
    held = {(p.account, p.post_id) for p in sim.audit.posts()}
    lost = [
        d
        for d in deliveries.values()
        if (channels[d["channel_id"]]["external_id"], d["external_id"]) not in held
    ]
    assert lost == []

    check_webhooks(receiver, hook["secret"], deliveries)


async def connect_channels(api: Client, sim: Simulator) -> dict[str, dict]:
    """One channel per entry of ZONES, keyed by name and by id."""
    made: dict[str, dict] = {}
    for name, (platform, zone) in ZONES.items():
        account = sim.add_account(platform)
        channel = await api.call(
            "POST",
            "/v1/channels",
            201,
            json={
                "platform": platform.value,
                "external_id": account.external_id,
                "name": name,
                "timezone": zone,
                "credentials": account.credentials,
            },
        )
        made[name] = made[channel["id"]] = channel
    return made


async def schedule_slots(api: Client, channels: dict[str, dict]) -> datetime:
    """A weekly slot at the next whole minute (local wall time) on two channels."""
    slot_at = next_minute(utcnow())
    for name in ("fb_newyork", "linkedin"):
        local = slot_at.astimezone(ZoneInfo(channels[name]["timezone"]))
        day = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        body = {"slots": [{"day": day[local.weekday()], "time": local.strftime("%H:%M")}]}
        await api.call("PUT", f"/v1/channels/{channels[name]['id']}/schedule", 200, json=body)
    return slot_at


def content_for(sim: Simulator, platform: Platform, text: str) -> dict[str, Any]:
    if platform is Platform.INSTAGRAM:
        return {"text": text, "media": [{"url": sim.media_url("image", "p.jpg"), "kind": "image"}]}
    if platform is Platform.YOUTUBE:
        video = sim.media_url("video", "v.mp4", size=2048)
        return {"text": text, "title": text[:90], "media": [{"url": video, "kind": "video"}]}
    return {"text": text}


async def schedule_posts(
    api: Client, sim: Simulator, channels: dict[str, dict], slot_at: datetime
) -> tuple[int, list[str]]:
    """Posts as a UTC instant, as wall times in each channel's zone or a given one, and into
    the posting slots; returns how many deliveries they make, and the slotted ones."""
    count = 0
    now = utcnow()
    for name, (platform, zone) in ZONES.items():
        target = [channels[name]["id"]]
        forms = [
            {"scheduled_at": now.isoformat()},
            {"local_time": wall(now, zone), "timezone": zone},
            {"local_time": wall(now, zone)},  # the channel's own zone
            {"local_time": wall(now, "Australia/Sydney"), "timezone": "Australia/Sydney"},
        ]
        for index, when in enumerate(forms):
            body = {
                "channel_ids": target,
                "content": content_for(sim, platform, f"{name} {index}"),
                **when,
            }
            await api.call("POST", "/v1/posts", 201, json=body)
            count += 1
    both = [channels["fb_newyork"]["id"], channels["linkedin"]["id"]]
    post = await api.call(
        "POST",
        "/v1/posts",
        201,
        json={"channel_ids": both, "content": {"text": "into the queue"}, "next_free_slot": True},
    )
    slotted = [d["id"] for d in post["deliveries"]]
    assert {d["scheduled_at"] for d in post["deliveries"]} == {
        slot_at.isoformat().replace("+00:00", "Z")
    }
    return count + len(slotted), slotted


async def import_csv(api: Client, sim: Simulator, channels: dict[str, dict]) -> int:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["channel_ids", "text", "title", "media_urls", "media_kinds", "scheduled_at"])
    now = utcnow().isoformat()
    for i in range(CSV_ROWS):
        name = CSV_CYCLE[i % len(CSV_CYCLE)]
        platform = ZONES[name][0]
        content = content_for(sim, platform, f"CSV row {i}, for {name}")
        media = content.get("media", [])
        writer.writerow(
            [
                channels[name]["id"],
                content["text"],
                content.get("title", ""),
                " ".join(m["url"] for m in media),
                " ".join(m["kind"] for m in media),
                now,
            ]
        )
    job = await api.call(
        "POST",
        "/v1/posts/import",
        202,
        content=out.getvalue().encode(),
        headers={"content-type": "text/csv"},
    )

    async def finished() -> bool:
        job.update(await api.call("GET", f"/v1/imports/{job['id']}", 200))
        return job["state"] in ("succeeded", "failed")

    await eventually(finished, within_s=60, every_s=0.1)  # the import runs in the background
    assert job["state"] == "succeeded", job
    return int(job["progress"]["posts_written"])


async def every_delivery(api: Client) -> dict[str, dict]:
    """Every delivery of the workspace, through the paginated listing."""
    found: dict[str, dict] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = await api.call("GET", "/v1/posts", 200, params=params)
        for post in page["items"]:
            for delivery in post["deliveries"]:
                found[delivery["id"]] = delivery
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def check_webhooks(receiver: Receiver, secret: str, deliveries: dict[str, dict]) -> None:
    seen: dict[str, str] = {}
    for headers, body in receiver.events:
        assert verify(secret, body, headers[SIGNATURE_HEADER])
        event = json.loads(body)
        assert event["event"] == "delivery.published"
        assert headers[EVENT_ID_HEADER] == event["id"]
        seen.setdefault(event["id"], event["delivery_id"])
    # At least once: a receiver may see an event twice, and dedupes by its id.
    assert sorted(seen.values()) == sorted(deliveries)
