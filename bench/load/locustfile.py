"""The API's traffic as an agency's tools make it: Locust users against a real ``herald serve``.

Run by ``bench/load/drive.py``, which starts the server, seeds it and writes the file this one
reads (``HERALD_LOAD_TENANTS``: the workspaces, their API keys, channels and a media URL).
Each user is one client of one workspace (users are spread evenly over the workspaces, so
each API key is shared by a few users, as a dashboard's and a scheduler's sessions share
their workspace's key).

The mix, as weights of the tasks each user picks from (out of 100):

====================================================  ======  ===============================
task                                                  weight  request(s)
====================================================  ======  ===============================
list the posts, sometimes a second and third page       22    ``GET /v1/posts?limit=50``,
                                                              then ``?cursor=`` (40 %, 20 %)
a filtered list (a channel's scheduled posts)            8    ``?status=scheduled&channel_id``
a calendar week, every page of it                       20    ``?scheduled_from&scheduled_to
                                                              &limit=200``
one post with its deliveries and attempts               17    ``GET /v1/posts/{id}``
the channels                                             8    ``GET /v1/channels``
a post on one channel at an instant                      9    ``POST /v1/posts``
a post on 2-3 channels at a wall time in each zone       5    ``POST /v1/posts``
a post in each channel's next free posting slot          3    ``POST /v1/posts``
a post due now (the engine publishes it meanwhile)       1    ``POST /v1/posts``
a create retried with its key (a lost answer)            1    ``POST /v1/posts`` twice
move one of the user's waiting posts                     3    ``POST .../reschedule``
cancel one of the user's waiting posts                   2    ``POST .../cancel``
a CSV of 20 posts, then its job until it is done         1    ``POST /v1/posts/import``,
                                                              ``GET /v1/imports/{id}``
====================================================  ======  ===============================

Why these weights: a scheduling tool's users mostly look (the post list, the calendar, a
post's outcome), so reads are three quarters of the tasks; writes are a quarter, most of them
new posts at a chosen time, fewer on several channels or in the next free slot, and a few
changes to posts already planned; a bulk CSV upload is rare (1 %), but each is 20 posts and
a job followed every half second until it is done. Most posts are planned days or weeks
ahead; 1 % are due now, so the engine in the same process publishes while the API serves.

Every write carries a fresh ``Idempotency-Key`` (a UUID), as a careful client sends it; the
retried create sends the same request with the same key again and must be answered with
``Idempotency-Replayed: true`` and the same post. Every post text is unique.

A response is a success when it has the status the call promises. ``429`` (over a key's
request budget, or the workspace's imports already running) and ``409`` on a reschedule or
a cancel (the engine moved the post on meanwhile) are expected answers of a busy API: they
are counted apart (``HERALD_LOAD_TALLY``: statuses per request name) and are not failures.
Anything else (a ``5xx``, another ``4xx``, no answer) is a failure.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, between, events, task

TENANTS_ENV = "HERALD_LOAD_TENANTS"
TALLY_ENV = "HERALD_LOAD_TALLY"
WAIT_ENV = "HERALD_LOAD_WAIT_S"  # "min,max": each user's pause between two tasks
HORIZON_DAYS = 56  # posts are planned up to 8 weeks ahead, as the seeded ones are
IMPORT_ROWS = 20
IMPORT_POLL_S = 0.5
IMPORT_PATIENCE_S = 60.0
PAGE = 50
CALENDAR_PAGE = 200  # the API's largest page (api.max_page_size)
EXPECTED = (409, 429)  # see the docstring; 409 only where the call says so

#: Statuses per request name, written at the end for bench/load/drive.py.
TALLY: defaultdict[str, Counter[int]] = defaultdict(Counter)
_users = itertools.count()
_texts = itertools.count()


@dataclass
class Workspace:
    index: int
    token: str
    channels: list[dict[str, str]]  # {"id", "platform", "timezone"}
    image_url: str
    seen: list[str] = field(default_factory=list)  # post ids its users have listed

    def remember(self, ids: list[str]) -> None:
        self.seen.extend(ids)
        if len(self.seen) > 2000:
            del self.seen[:1000]


def _load() -> list[Workspace]:
    path = os.environ.get(TENANTS_ENV)
    if not path:
        raise RuntimeError(f"{TENANTS_ENV} names the file bench/load/drive.py writes")
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return [
        Workspace(i, w["token"], w["channels"], raw["image_url"])
        for i, w in enumerate(raw["workspaces"])
    ]


_WORKSPACES: list[Workspace] = []


def _workspaces() -> list[Workspace]:
    if not _WORKSPACES:
        _WORKSPACES.extend(_load())
    return _WORKSPACES


def _wait() -> Any:
    low, high = (float(x) for x in os.environ.get(WAIT_ENV, "0.5,1.5").split(","))
    return between(low, high)


@events.reset_stats.add_listener
def _reset_tally(**_: Any) -> None:
    """The figures count from the moment every user has started (``--reset-stats``)."""
    TALLY.clear()


@events.quitting.add_listener
def _write_tally(environment: Any, **_: Any) -> None:
    path = os.environ.get(TALLY_ENV)
    if path:
        tally = {name: dict(codes) for name, codes in TALLY.items()}
        Path(path).write_text(json.dumps(tally), encoding="utf-8")


def _future(rng: random.Random, *, at_least_h: int = 1) -> datetime:
    """An instant within the horizon, on a quarter hour, about ``at_least_h`` ahead or more."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = rng.randrange(at_least_h * 60, HORIZON_DAYS * 24 * 60)
    at = now + timedelta(minutes=minutes)
    return at.replace(minute=at.minute - at.minute % 15)


class AgencyUser(FastHttpUser):
    """One client of one workspace."""

    wait_time = _wait()

    def on_start(self) -> None:
        spaces = _workspaces()
        self.workspace = spaces[next(_users) % len(spaces)]
        self.rng = random.Random()
        self.mine: list[str] = []  # posts this user made that wait in the future
        self.auth = {"Authorization": f"Bearer {self.workspace.token}"}
        self.list_posts()

    # --- the calls -------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        ok: int = 200,
        expected: tuple[int, ...] = (429,),
        key: str | None = None,
        **kw: Any,
    ) -> Any:
        """The request; its JSON when it answered ``ok``, else None (counted by status)."""
        headers = {**self.auth, **kw.pop("headers", {})}
        if method != "GET":
            headers["Idempotency-Key"] = key or str(uuid.uuid4())
        with self.client.request(
            method, path, name=name, headers=headers, catch_response=True, **kw
        ) as response:
            status = response.status_code or 0
            TALLY[name][status] += 1
            if status == ok:
                response.success()
                return response.json()
            if status in expected:
                response.success()
                return None
            response.failure(f"HTTP {status}: {(response.text or '')[:200]}")
            return None

    def text(self) -> str:
        n = next(_texts)
        return f"Workspace {self.workspace.index}, post {n} ({uuid.uuid4().hex[:8]}): fresh bread"

    def content(self, channels: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text()}
        if any(c["platform"] == "instagram" for c in channels) or self.rng.random() < 0.3:
            body["media"] = [{"url": self.workspace.image_url, "kind": "image"}]
        return body

    def some_channels(self, low: int, high: int) -> list[dict[str, str]]:
        channels = self.workspace.channels
        return self.rng.sample(channels, min(len(channels), self.rng.randint(low, high)))

    def create(self, name: str, channels: list[dict[str, str]], when: dict[str, Any]) -> Any:
        body = {"channel_ids": [c["id"] for c in channels], "content": self.content(channels)}
        post = self.call("POST", "/v1/posts", name, ok=201, json=body | when)
        if post is not None:
            self.workspace.remember([post["id"]])
        return post

    def keep(self, post: Any) -> None:
        if post is not None:
            self.mine.append(post["id"])
            if len(self.mine) > 200:
                del self.mine[:100]

    # --- reads (75) --------------------------------------------------------------------------

    @task(22)
    def list_posts(self) -> None:
        page = self.call("GET", f"/v1/posts?limit={PAGE}", "GET /v1/posts")
        for chance in (0.4, 0.5):  # a second page 40 % of the time, a third 20 %
            if page is None or page["next_cursor"] is None or self.rng.random() >= chance:
                break
            self.workspace.remember([p["id"] for p in page["items"]])
            url = f"/v1/posts?limit={PAGE}&cursor={page['next_cursor']}"
            page = self.call("GET", url, "GET /v1/posts?cursor")
        if page is not None:
            self.workspace.remember([p["id"] for p in page["items"]])

    @task(8)
    def list_channel_scheduled(self) -> None:
        channel = self.rng.choice(self.workspace.channels)["id"]
        url = f"/v1/posts?status=scheduled&channel_id={channel}&limit={PAGE}"
        self.call("GET", url, "GET /v1/posts?status&channel_id")

    @task(20)
    def calendar_week(self) -> None:
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = day + timedelta(days=self.rng.randrange(0, HORIZON_DAYS - 7))
        query = {
            "scheduled_from": start.isoformat(),
            "scheduled_to": (start + timedelta(days=7)).isoformat(),
            "limit": CALENDAR_PAGE,
        }
        cursor = None
        for _ in range(20):  # every page of the week
            params = query if cursor is None else query | {"cursor": cursor}
            page = self.call("GET", "/v1/posts", "GET /v1/posts?scheduled_from&to", params=params)
            if page is None or page["next_cursor"] is None:
                return
            cursor = page["next_cursor"]

    @task(17)
    def get_post(self) -> None:
        if not self.workspace.seen:
            self.list_posts()
            return
        post_id = self.rng.choice(self.workspace.seen)
        self.call("GET", f"/v1/posts/{post_id}", "GET /v1/posts/{id}")

    @task(8)
    def list_channels(self) -> None:
        self.call("GET", "/v1/channels", "GET /v1/channels")

    # --- writes (24) -------------------------------------------------------------------------

    @task(9)
    def create_at_instant(self) -> None:
        when = {"scheduled_at": _future(self.rng).isoformat()}
        self.keep(self.create("POST /v1/posts (1 channel, at)", self.some_channels(1, 1), when))

    @task(5)
    def create_local_time(self) -> None:
        # A day ahead at least: the same wall time is up to 14 hours earlier in Asia.
        local = _future(self.rng, at_least_h=24).replace(tzinfo=None).isoformat(timespec="minutes")
        when = {"local_time": local, "on_gap": "shift"}
        name = "POST /v1/posts (2-3 channels, local time)"
        self.keep(self.create(name, self.some_channels(2, 3), when))

    @task(3)
    def create_next_free_slot(self) -> None:
        name = "POST /v1/posts (next free slot)"
        self.keep(self.create(name, self.some_channels(1, 2), {"next_free_slot": True}))

    @task(1)
    def create_due_now(self) -> None:
        when = {"scheduled_at": datetime.now(UTC).isoformat()}
        self.create("POST /v1/posts (due now)", self.some_channels(1, 2), when)

    @task(1)
    def create_retried(self) -> None:
        channels = self.some_channels(1, 1)
        body = {
            "channel_ids": [c["id"] for c in channels],
            "content": self.content(channels),
            "scheduled_at": _future(self.rng).isoformat(),
        }
        key = str(uuid.uuid4())
        first = self.call(
            "POST", "/v1/posts", "POST /v1/posts (1 channel, at)", ok=201, key=key, json=body
        )
        if first is None:
            return
        name = "POST /v1/posts (retried with its key)"
        with self.client.post(
            "/v1/posts",
            name=name,
            json=body,
            headers={**self.auth, "Idempotency-Key": key},
            catch_response=True,
        ) as again:
            TALLY[name][again.status_code or 0] += 1
            replayed = again.headers.get("Idempotency-Replayed") == "true"
            if again.status_code == 201 and replayed and again.json()["id"] == first["id"]:
                again.success()
            else:
                again.failure(f"not replayed: HTTP {again.status_code}, replayed={replayed}")
        self.keep(first)

    @task(3)
    def reschedule(self) -> None:
        if not self.mine:
            return
        post_id = self.rng.choice(self.mine)
        body = {"scheduled_at": _future(self.rng).isoformat()}
        path = f"/v1/posts/{post_id}/reschedule"
        self.call("POST", path, "POST /v1/posts/{id}/reschedule", expected=EXPECTED, json=body)

    @task(2)
    def cancel(self) -> None:
        if not self.mine:
            return
        post_id = self.mine.pop(self.rng.randrange(len(self.mine)))
        self.call(
            "POST", f"/v1/posts/{post_id}/cancel", "POST /v1/posts/{id}/cancel", expected=EXPECTED
        )

    # --- imports (1) -------------------------------------------------------------------------

    @task(1)
    def import_csv(self) -> None:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["channel_ids", "text", "media_urls", "scheduled_at"])
        for _ in range(IMPORT_ROWS):
            channels = self.some_channels(1, 2)
            media = self.content(channels).get("media", [])
            writer.writerow(
                [
                    ";".join(c["id"] for c in channels),
                    self.text(),
                    " ".join(m["url"] for m in media),
                    _future(self.rng).isoformat(),
                ]
            )
        job = self.call(
            "POST",
            "/v1/posts/import",
            "POST /v1/posts/import",
            ok=202,
            data=out.getvalue().encode(),
            headers={"Content-Type": "text/csv"},
        )
        waited = 0.0
        while job is not None and job["state"] not in ("succeeded", "failed"):
            if waited > IMPORT_PATIENCE_S:
                self.environment.events.request.fire(
                    request_type="IMPORT",
                    name="import job done",
                    response_time=waited * 1000,
                    response_length=0,
                    exception=RuntimeError(f"job {job['id']} still {job['state']}"),
                )
                return
            gevent.sleep(IMPORT_POLL_S)
            waited += IMPORT_POLL_S
            job = self.call("GET", f"/v1/imports/{job['id']}", "GET /v1/imports/{id}")
        if job is not None and job["state"] == "failed":
            self.environment.events.request.fire(
                request_type="IMPORT",
                name="import job done",
                response_time=0,
                response_length=0,
                exception=RuntimeError(f"import failed: {job['detail']}"),
            )
