"""An in-memory platform for engine unit tests: a connector whose answers a test scripts.

Integration tests use the real simulator over HTTP; this fake only isolates engine logic.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Mapping

from herald.domain import Channel, Content, Platform
from herald.errors import ContentInvalid, OutcomeUnknown
from herald.types import Credentials, Published, PublishRequest

#: What to do with a publish: None publishes; an exception is raised (before committing);
#: "commit-then-unknown" commits the post then raises OutcomeUnknown.
Step = BaseException | str | None


class FakePlatform:
    def __init__(self) -> None:
        self.posts: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.calls: list[tuple[str, str]] = []  # (kind, delivery id)
        self.arrivals: list[float] = []  # monotonic time each publish arrived
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, re-checked at every call the platform receives."""

        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(check(), timeout_s)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def commit(self, account: str, text: str) -> str:
        post_id = f"p{next(self._ids)}"
        self.posts[(account, text)].append(post_id)
        return post_id

    def duplicates(self) -> int:
        return sum(len(ids) - 1 for ids in self.posts.values() if len(ids) > 1)

    def published(self) -> int:
        return sum(len(ids) for ids in self.posts.values())


class FakeConnector:
    def __init__(
        self,
        platform: Platform,
        world: FakePlatform,
        *,
        script: Mapping[str, list[Step]] | None = None,
        latency_s: float = 0.0,
        find_script: list[BaseException] | None = None,
        usage: Callable[[Content], Mapping[str, int]] | None = None,
        page_usage: Mapping[str, int] | None = None,
    ) -> None:
        self.platform = platform
        self.world = world
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.find_script = list(find_script or [])
        self.latency_s = latency_s
        self._usage = usage
        self.page_usage = page_usage  # a look-up reads a second listing page costing this
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    def usage_of(self, content: Content) -> Mapping[str, int]:
        return self._usage(content) if self._usage else {"calls": 1}

    def lookup_usage(self) -> Mapping[str, int]:
        return {}

    def validate(self, content: Content) -> None:
        if not content.text:
            raise ContentInvalid("text is required", field="text")

    async def publish(self, request: PublishRequest) -> Published:
        self.world.calls.append(("publish", request.delivery_id))
        self.world.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await self.world._notify()
        try:
            await asyncio.sleep(self.latency_s)
            steps = self.script.get(request.content.text) or self.script.get("*") or []
            step = steps.pop(0) if steps else None
            account = request.channel.external_id
            if step == "commit-then-unknown":
                self.world.commit(account, request.content.text)
                raise OutcomeUnknown("connection dropped after the request was sent")
            if isinstance(step, BaseException):
                raise step
            return Published(self.world.commit(account, request.content.text))
        finally:
            self.in_flight -= 1
            await self.world._notify()

    async def find(self, request: PublishRequest) -> Published | None:
        self.world.calls.append(("find", request.delivery_id))
        if self.page_usage is not None and request.meter is not None:
            await request.meter(self.page_usage)
        if self.find_script:
            raise self.find_script.pop(0)
        ids = self.world.posts.get((request.channel.external_id, request.content.text))
        return Published(ids[0]) if ids else None

    async def aclose(self) -> None:
        self.closed = True


class StaticCredentials:
    def __init__(self, refused: set[str] | None = None) -> None:
        self.refused = refused or set()

    async def resolve(self, channel: Channel) -> Credentials:
        from herald.errors import AuthExpired

        if channel.id in self.refused:
            raise AuthExpired("no token for this channel")
        return {"access_token": "t"}
