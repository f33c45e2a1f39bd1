"""Warnings ahead of the retirement of the platform API versions this engine speaks.

Two signals, one warning:

- **The calendar.** Herald's own dates (:mod:`herald.versions`): at start-up and every hour
  the watch sets ``herald_platform_version_retires_in_days{platform,version}`` for each
  version it speaks, and warns of one that retires within ``engine.version_warning_days``
  (``retiring``) or already has (``retired``).
- **The platforms' answers.** A connector tells the watch (:class:`~herald.types.
  VersionObserver`) when Graph answered from another version than the one asked for (Graph
  serves the calls of a version past its end of life with the oldest live one:
  ``upgraded``), or when LinkedIn refused the version as sunset (``refused``). The watch
  warns at once, whatever its calendar says: the platform's word wins.

A warning is a log line and a webhook event, both named ``platform.version_retiring``, the
event recorded for the webhooks subscribed to it in the workspaces with a channel on the
platform. At most one per platform and version per UTC day in this process: a busy engine
cannot flood anyone. A warning the store could not record is tried again after the store's
back-off; the log line follows the record, so each one logged was recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from herald.config import Settings
from herald.constants import PLATFORM_VERSION_RETIRING
from herald.domain import Platform
from herald.engine.health import StoreHealth
from herald.engine.metrics import Metrics
from herald.errors import StoreUnavailable
from herald.types import EngineStore
from herald.versions import retires_on, spoken_versions
from herald.wakeup import wait_first

__all__ = ["VersionNotice", "VersionWatch"]

log = logging.getLogger("herald.engine")

#: How often the calendar is read again (seconds): a day's warning is never late by more.
CHECK_EVERY_S = 3600.0

Reason = Literal["retiring", "retired", "upgraded", "refused"]


@dataclass(frozen=True, slots=True)
class VersionNotice:
    """One warning about ``version`` of ``platform``'s API."""

    platform: Platform
    version: str
    reason: Reason
    retires_on: date | None
    days_left: int | None
    served_by: str | None = None

    def payload(self, at: datetime) -> dict[str, object]:
        """The webhook event's body (docs/api.md, "Webhooks")."""
        return {
            "event": PLATFORM_VERSION_RETIRING,
            "platform": self.platform.value,
            "version": self.version,
            "retires_on": None if self.retires_on is None else self.retires_on.isoformat(),
            "days_left": self.days_left,
            "reason": self.reason,
            "served_by": self.served_by,
            "occurred_at": at.isoformat(),
        }


class VersionWatch:
    """The versions ``settings`` speak, their gauges and their warnings (see the module)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._spoken = spoken_versions(settings)
        self._horizon_days = settings.engine.version_warning_days
        self._gauge = metrics.version_retires_in_days
        self._given = metrics.version_warnings
        #: The last warnings given by this process, oldest first (a few a day at most).
        self.given: deque[VersionNotice] = deque(maxlen=100)
        # What the platforms answered that was not the version asked for, not warned of yet.
        self._answers: dict[tuple[Platform, str], str | None] = {}
        self._warned: set[tuple[Platform, str, date]] = set()
        self._wake = asyncio.Event()

    # -- what the connectors tell ---------------------------------------------------------
    def served(self, platform: Platform, asked: str, served: str | None) -> None:
        if served == asked:
            return
        self._answers.setdefault((platform, asked), served)
        self._wake.set()

    # -- the warnings ---------------------------------------------------------------------
    def due(self, today: date) -> list[VersionNotice]:
        """The warnings to give on ``today`` that were not given yet; gauges set."""
        notices: dict[tuple[Platform, str], VersionNotice] = {}
        for (platform, asked), served in list(self._answers.items()):
            if (platform, asked, today) in self._warned:
                del self._answers[platform, asked]  # told today already
                continue
            reason: Reason = "refused" if served is None else "upgraded"
            notices[platform, asked] = self._notice(platform, asked, today, reason, served)
        for platform, version in self._spoken.items():
            notice = self._notice(platform, version, today)
            if notice.days_left is not None and notice.days_left <= self._horizon_days:
                notices.setdefault((platform, version), notice)
        return [n for n in notices.values() if (n.platform, n.version, today) not in self._warned]

    def _notice(
        self,
        platform: Platform,
        version: str,
        today: date,
        reason: Reason | None = None,
        served_by: str | None = None,
    ) -> VersionNotice:
        retires = retires_on(platform, version)
        days = None if retires is None else (retires - today).days
        if days is not None:
            self._gauge.labels(platform.value, version).set(days)
        if reason is None:
            reason = "retiring" if days is None or days > 0 else "retired"
        return VersionNotice(platform, version, reason, retires, days, served_by)

    async def warn(self, store: EngineStore, notice: VersionNotice, now: datetime) -> None:
        """Record the webhook event, then log: the warning is given."""
        payload = notice.payload(now)
        recorded = await store.record_platform_event(
            notice.platform, PLATFORM_VERSION_RETIRING, payload, now
        )
        self._warned.add((notice.platform, notice.version, now.date()))
        self._answers.pop((notice.platform, notice.version), None)
        self.given.append(notice)
        self._given.labels(notice.platform.value, notice.version, notice.reason).inc()
        fields = {k: v for k, v in payload.items() if k not in ("event", "occurred_at")}
        log.warning(PLATFORM_VERSION_RETIRING, extra={**fields, "webhook_events": recorded})

    async def check(self, store: EngineStore, now: datetime) -> int:
        """Give the warnings due ``now``; how many were given."""
        notices = self.due(now.date())
        for notice in notices:
            await self.warn(store, notice, now)
        return len(notices)

    async def run(
        self,
        store: EngineStore,
        health: StoreHealth,
        stopping: asyncio.Event,
        recorded: Callable[[], None],
    ) -> None:
        """Check at once, then every :data:`CHECK_EVERY_S` and whenever a connector tells of
        another version, until ``stopping``; ``recorded`` wakes the webhook sender."""
        backoff = health.backoff()
        while not stopping.is_set():
            self._wake.clear()
            try:
                if await self.check(store, health.clock.now()):
                    recorded()
            except StoreUnavailable as exc:
                health.failed("versions", exc)
                recorded()  # the warnings recorded before the failure
                await wait_first(stopping, within_s=backoff.next_s())
                continue
            backoff.reset()
            await wait_first(stopping, self._wake, within_s=CHECK_EVERY_S)
