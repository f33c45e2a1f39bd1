"""YouTube's daily quotas, days in Pacific Time.

- units: ``units_per_day``; every list call costs 1, and in the ``units`` model every
  videos.insert costs ``insert_cost_units``.
- insert calls: in the ``bucket`` model, videos.insert has its own ``insert_calls_per_day``.
- uploads per channel, when configured.

videos.insert is charged when the upload session starts, which is the insert call. Over an
app quota: 403 ``quotaExceeded``; over the channel cap: 400 ``uploadLimitExceeded``; both
recorded as limit violations.
"""

from __future__ import annotations

from collections import defaultdict

from herald.constants import YouTubeReason
from herald.domain import Platform
from herald.simulator.context import SimContext
from herald.simulator.google import google_error
from herald.simulator.pipeline import Reply
from herald.simulator.quotas import Counter, DailyCounter, admit

__all__ = ["PACIFIC", "YouTubeQuota"]

_YT = Platform.YOUTUBE
PACIFIC = "America/Los_Angeles"


class YouTubeQuota:
    def __init__(self, ctx: SimContext) -> None:
        self._ctx = ctx
        config = ctx.config.youtube
        self._config = config
        self.units = DailyCounter("units", config.units_per_day, PACIFIC)
        self.inserts = DailyCounter("insert_calls", config.insert_calls_per_day, PACIFIC)
        cap = config.uploads_per_channel_per_day
        self._uploads: defaultdict[str, DailyCounter] | None = None
        if cap is not None:
            self._uploads = defaultdict(lambda: DailyCounter("channel_uploads", cap, PACIFIC))

    def charge_list(self, channel: str) -> None:
        self._charge(channel, [(self.units, 1)])

    def charge_insert(self, channel: str) -> None:
        claims: list[tuple[Counter, int]]
        if self._config.quota_model == "bucket":
            claims = [(self.inserts, 1)]
        else:
            claims = [(self.units, self._config.insert_cost_units)]
        if self._uploads is not None:
            claims.append((self._uploads[channel], 1))
        self._charge(channel, claims)

    def _charge(self, channel: str, claims: list[tuple[Counter, int]]) -> None:
        now = self._ctx.clock.now()
        refused = admit(now, claims)
        if refused is None:
            return
        self._ctx.audit.violation(_YT, channel, refused.name, now)
        if refused.name == "channel_uploads":
            raise Reply(
                google_error(
                    400,
                    YouTubeReason.UPLOAD_LIMIT_EXCEEDED,
                    "The user has exceeded the number of videos they may upload.",
                    domain="youtube.video",
                )
            )
        raise Reply(
            google_error(
                403,
                YouTubeReason.QUOTA_EXCEEDED,
                "The request cannot be completed because you have exceeded your quota.",
                domain="youtube.quota",
            )
        )
