"""An in-memory platform and a connector to it whose answers a test scripts.

:class:`FakePlatform` keeps every post it accepted, so a test can count what was published and
whether anything was published twice, the way the simulator's audit does over HTTP.
:class:`FakeConnector` implements :class:`herald.types.Connector` against it; each publish takes
the next :data:`Step` scripted for the post's text.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from herald.domain import Content, Platform
from herald.errors import ContentInvalid, OutcomeUnknown
from herald.types import Published, PublishRequest

__all__ = ["COMMIT_THEN_UNKNOWN", "FakeConnector", "FakePlatform", "Step"]

#: A step that commits the post, then loses the answer (the connection drops): the engine sees
#: an unknown outcome although the platform holds the post.
COMMIT_THEN_UNKNOWN = "commit-then-unknown"

#: What one publish does: None publishes; an exception is raised without committing;
#: :data:`COMMIT_THEN_UNKNOWN` commits, then raises :class:`~herald.errors.OutcomeUnknown`.
Step = BaseException | str | None


class FakePlatform:
    """What the platform holds and what it was asked, shared by the connectors to it."""

    def __init__(self, *, listing_lag_s: float = 0.0) -> None:
        self.posts: dict[tuple[str, str], list[str]] = defaultdict(list)  # (account, text) -> ids
        # A post shows to look-ups this long after it was committed (listings lag).
        self.listing_lag_s = listing_lag_s
        self._listed_at: dict[str, float] = {}  # post id -> the loop's time it shows from
        self.calls: list[tuple[str, str]] = []  # (publish|find, delivery id), in arrival order
        self.arrivals: list[float] = []  # the loop's time (virtual or not) of each publish
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until ``predicate()`` holds, checked again at every request the platform
        receives and answers; raise :class:`TimeoutError` after ``timeout_s``."""

        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(check(), timeout_s)

    async def changed(self) -> None:
        """Wake :meth:`wait_until`: a request arrived or was answered."""
        async with self._changed:
            self._changed.notify_all()

    def commit(self, account: str, text: str) -> str:
        post_id = f"p{next(self._ids)}"
        self.posts[(account, text)].append(post_id)
        self._listed_at[post_id] = asyncio.get_running_loop().time() + self.listing_lag_s
        return post_id

    def listed(self, account: str, text: str) -> list[str]:
        """The ids of ``text``'s posts a listing shows now."""
        now = asyncio.get_running_loop().time()
        return [i for i in self.posts.get((account, text), ()) if self._listed_at[i] <= now]

    def duplicates(self) -> int:
        """Posts held more than once for one account and text."""
        return sum(len(ids) - 1 for ids in self.posts.values() if len(ids) > 1)

    def published(self) -> int:
        return sum(len(ids) for ids in self.posts.values())


class FakeConnector:
    """Implements :class:`herald.types.Connector` against a :class:`FakePlatform`.

    ``script`` maps a post's text (or ``"*"``, any text) to the steps its successive publishes
    take; past the script, publishes succeed. ``find_script`` lists errors the next look-ups
    raise. ``page_usage``: each look-up reads a second listing page costing that much, reserved
    through the request's meter as a real connector does.
    """

    def __init__(
        self,
        platform: Platform,
        world: FakePlatform,
        *,
        script: Mapping[str, Sequence[Step]] | None = None,
        latency_s: float = 0.0,
        find_script: Sequence[BaseException] | None = None,
        usage: Callable[[Content], Mapping[str, int]] | None = None,
        page_usage: Mapping[str, int] | None = None,
    ) -> None:
        self.platform = platform
        self.world = world
        self.script = {text: list(steps) for text, steps in (script or {}).items()}
        unknown = {
            step
            for steps in self.script.values()
            for step in steps
            if isinstance(step, str) and step != COMMIT_THEN_UNKNOWN
        }
        if unknown:
            # A misspelt step would otherwise publish, and the test would pass for nothing.
            raise ValueError(f"unknown script steps {sorted(unknown)}: use {COMMIT_THEN_UNKNOWN!r}")
        self.find_script = list(find_script or [])
        self.latency_s = latency_s
        self._usage = usage
        self.page_usage = page_usage
        self.in_flight = 0
        self.max_in_flight = 0  # the most publishes in progress at once
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
        self.world.arrivals.append(asyncio.get_running_loop().time())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await self.world.changed()
        try:
            await asyncio.sleep(self.latency_s)
            return self._answer(request)
        finally:
            self.in_flight -= 1
            await self.world.changed()

    def _answer(self, request: PublishRequest) -> Published:
        text, account = request.content.text, request.channel.external_id
        steps = self.script.get(text) or self.script.get("*") or []
        step = steps.pop(0) if steps else None
        if step == COMMIT_THEN_UNKNOWN:
            self.world.commit(account, text)
            raise OutcomeUnknown("connection dropped after the request was sent")
        if isinstance(step, BaseException):
            raise step
        return Published(self.world.commit(account, text))

    async def find(self, request: PublishRequest) -> Published | None:
        self.world.calls.append(("find", request.delivery_id))
        if self.page_usage is not None and request.meter is not None:
            await request.meter(self.page_usage)
        if self.find_script:
            raise self.find_script.pop(0)
        ids = self.world.listed(request.channel.external_id, request.content.text)
        return Published(ids[0]) if ids else None

    async def aclose(self) -> None:
        self.closed = True
