"""Generated workloads: channels across the four platforms and posts across a dozen zones.

Shared by the demo and the benchmarks. The plan keeps every channel within its platform's
daily limits (Instagram's 100 posts a day per account, LinkedIn's member quota, YouTube's
project-wide upload quota), so a run can finish; tests show what happens when a quota runs out.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from herald.config import Settings
from herald.domain import (
    Channel,
    Content,
    ContentOverride,
    Media,
    MediaKind,
    NewPost,
    Platform,
    Post,
    new_id,
)
from herald.timing import LocalTime, resolve
from herald.timing import zone as tz

__all__ = [
    "ZONES",
    "MediaUrls",
    "PlannedDelivery",
    "Workload",
    "expected_targets",
    "plan_channel_counts",
    "plan_posts",
    "tag_of",
    "youtube_cap",
]

ZONES = (
    "Europe/Paris",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Africa/Johannesburg",
    "Asia/Singapore",
    "Pacific/Auckland",
    "America/Chicago",
)

# Share of deliveries per platform before quotas are applied; YouTube is capped separately.
_WEIGHTS = {Platform.FACEBOOK: 0.40, Platform.INSTAGRAM: 0.25, Platform.LINKEDIN: 0.30}
_BASE_CHANNELS = {
    Platform.FACEBOOK: 12,
    Platform.INSTAGRAM: 10,
    Platform.LINKEDIN: 12,
    Platform.YOUTUBE: 6,
}
_HEADROOM = 0.9  # plan at most 90 % of a daily quota, leaving room for retries and checks


def tag_of(index: int) -> str:
    """The unique mark a post's text carries, found again in the simulator's audit."""
    return f"demo-{index:06d}"


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One delivery of the plan: its id, the post it belongs to, the channel it targets."""

    delivery_id: str
    post_index: int
    channel: Channel

    @property
    def tag(self) -> str:
        """The mark its post's text carries (:func:`tag_of`)."""
        return tag_of(self.post_index)


@dataclass(frozen=True, slots=True)
class Workload:
    posts: list[NewPost]
    deliveries: list[PlannedDelivery]

    def count_by_platform(self) -> dict[Platform, int]:
        counts: dict[Platform, int] = defaultdict(int)
        for planned in self.deliveries:
            counts[planned.channel.platform] += 1
        return dict(counts)


def _daily_capacity(platform: Platform, settings: Settings) -> float:
    """Deliveries one channel may take in a day on ``platform``."""
    if platform is Platform.INSTAGRAM:
        return settings.instagram.publishes_per_24h * _HEADROOM
    if platform is Platform.LINKEDIN:
        return settings.linkedin.member_posts_per_day * _HEADROOM
    if platform is Platform.FACEBOOK:
        return 4800 * settings.facebook.page_engaged_users * _HEADROOM
    per_channel = settings.youtube.uploads_per_channel_per_day
    return math.inf if per_channel is None else per_channel * _HEADROOM


def youtube_cap(settings: Settings) -> int:
    """YouTube deliveries a run may plan: the project's daily upload quota, with headroom."""
    yt = settings.youtube
    if yt.quota_model == "bucket":
        inserts = yt.insert_calls_per_day
    else:
        inserts = yt.units_per_day // yt.insert_cost_units
    return int(inserts * _HEADROOM)


def expected_targets(posts: int) -> dict[Platform, int]:
    deliveries = posts * 1.5  # a post goes to one or two channels
    return {p: math.ceil(deliveries * w) for p, w in _WEIGHTS.items()}


def plan_channel_counts(posts: int, settings: Settings) -> dict[Platform, int]:
    """Channels per platform: the base mix, more where a daily quota would be exceeded."""
    load = expected_targets(posts)
    counts = dict(_BASE_CHANNELS)
    for platform, deliveries in load.items():
        needed = math.ceil(deliveries * 1.1 / _daily_capacity(platform, settings))
        counts[platform] = max(counts[platform], needed)
    return counts


def _choose_targets(
    rng: random.Random,
    channels: dict[Platform, list[Channel]],
    used: dict[str, int],
    youtube_left: int,
) -> list[Channel]:
    platforms = list(_WEIGHTS)
    weights = [_WEIGHTS[p] for p in platforms]
    first = rng.choices(platforms, weights)[0]
    picked = [first]
    if rng.random() < 0.5:
        others = [p for p in platforms if p is not first]
        picked.append(rng.choices(others, [_WEIGHTS[p] for p in others])[0])
    if youtube_left > 0 and rng.random() < 0.08:
        picked.append(Platform.YOUTUBE)
    targets = []
    for platform in picked:
        # The least used channel of the platform: spreads load evenly under every quota.
        channel = min(channels[platform], key=lambda c: (used[c.id], c.id))
        used[channel.id] += 1
        targets.append(channel)
    return targets


def _content(index: int, zone: str, targets: Sequence[Channel], media_url: MediaUrls) -> Post:
    text = (
        f"Post {index} of the Herald demo, scheduled for {zone} local time. "
        f"#herald #scheduling {tag_of(index)}"
    )
    platforms = {c.platform for c in targets}
    media: tuple[Media, ...] = ()
    if Platform.INSTAGRAM in platforms or index % 3 == 0:
        media = (Media(media_url.image(index), MediaKind.IMAGE, alt_text="A demo picture"),)
    overrides = {}
    if Platform.YOUTUBE in platforms:
        overrides[Platform.YOUTUBE] = ContentOverride(
            media=(Media(media_url.video(index), MediaKind.VIDEO),),
            title=f"Herald demo video {index}",
        )
    link = None if media else f"https://example.com/articles/{index}"
    content = Content(text=text, link=link, media=media)
    return Post(id=new_id("post"), content=content, overrides=overrides)


class MediaUrls:
    """Where generated posts point their media (the simulator serves the bytes)."""

    def __init__(self, image_base: str, video_base: str) -> None:
        self._image_base = image_base
        self._video_base = video_base

    def image(self, index: int) -> str:
        return _with_param(self._image_base, index)

    def video(self, index: int) -> str:
        return _with_param(self._video_base, index)


def _with_param(url: str, index: int) -> str:
    return f"{url}{'&' if '?' in url else '?'}i={index}"


def plan_posts(
    channels: Sequence[Channel],
    posts: int,
    *,
    start_at: datetime,
    spread_s: float,
    media_urls: MediaUrls,
    youtube_limit: int,
    seed: int,
) -> Workload:
    """``posts`` posts due between ``start_at`` and ``start_at + spread_s``, each written as a
    local wall time in the zone of its first channel (the way a person schedules)."""
    rng = random.Random(seed)
    by_platform: dict[Platform, list[Channel]] = defaultdict(list)
    for channel in channels:
        by_platform[channel.platform].append(channel)
    used: dict[str, int] = defaultdict(int)
    youtube_left = youtube_limit if by_platform[Platform.YOUTUBE] else 0
    new_posts: list[NewPost] = []
    planned: list[PlannedDelivery] = []
    for index in range(posts):
        targets = _choose_targets(rng, by_platform, used, youtube_left)
        youtube_left -= sum(1 for c in targets if c.platform is Platform.YOUTUBE)
        zone = targets[0].timezone
        due_utc = start_at + timedelta(seconds=spread_s * index / max(1, posts))
        wall = due_utc.astimezone(tz(zone)).replace(tzinfo=None)
        due = resolve(LocalTime(wall, zone), on_gap="shift")
        post = _content(index, zone, targets, media_urls)
        ids = [new_id("dlv") for _ in targets]
        new_posts.append(NewPost.at(post, zip(ids, (c.id for c in targets), strict=True), due))
        planned += [PlannedDelivery(i, index, c) for i, c in zip(ids, targets, strict=True)]
    return Workload(new_posts, planned)
