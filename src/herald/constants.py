"""Names that cross a wire or a process boundary, kept in one place.

Receivers, other processes and other versions of Herald depend on these strings: change one
only with a new version in its name. Log event names that are not also wire names live with
the code that logs them.

The platforms' own names (error codes and reasons, headers, endpoints, states) are here too,
where a connector and the simulator, or two connectors, both use them. The platforms fix
them (docs/platforms.md), so they are copied from the platforms' documents once. A closed
set of names (the codes of one API, the states of a container) is an enum, whose members
compare equal to the plain numbers and strings on the wire. Only names are shared: the rules
behind them (limits, quota days, what an answer means) stay written twice, once in the
connectors and once in the simulator, so that one misreading of a platform cannot pass both
sides.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Final

__all__ = [
    "CAPS_KEY_PREFIX",
    "CHANNEL_NEEDS_REAUTH",
    "DEFAULT_REGION",
    "DELIVERY_FAILED",
    "DELIVERY_PUBLISHED",
    "DELIVERY_UNCONFIRMED",
    "GRAPH_APP_THROTTLE_CODES",
    "GRAPH_PAGE_THROTTLE_CODES",
    "GRAPH_PERMISSION_CODES",
    "GRAPH_REGAIN_FIELD",
    "GRAPH_USAGE_FIELDS",
    "GRAPH_VERSION_HEADER",
    "IDEMPOTENCY_KEY_HEADER",
    "IDEMPOTENCY_KEY_PATTERN",
    "IDEMPOTENCY_REPLAYED_HEADER",
    "LIMITS_KEY_PREFIX",
    "LINKEDIN_DUPLICATE_POST",
    "LINKEDIN_VERSION_REFUSED_PAUSE_S",
    "MIGRATION_LOCK_PREFIX",
    "MOVE_LOCK_PREFIX",
    "NOTIFY_PREFIX",
    "OUTBOX_LOCK_PREFIX",
    "PLATFORM_EVENT_LOCK_PREFIX",
    "PLATFORM_VERSION_RETIRING",
    "RABBIT_QUEUE_PREFIX",
    "RABBIT_QUEUE_VERSION",
    "REDIS_QUEUE_GROUP",
    "REDIS_QUEUE_PREFIX",
    "REDIS_QUEUE_VERSION",
    "REGION_PATTERN",
    "RESTLI_PROTOCOL_VERSION",
    "WEBHOOK_DISABLED",
    "WEBHOOK_EVENTS",
    "ContainerStatus",
    "GraphCode",
    "GraphEdge",
    "GraphHeader",
    "InstagramCode",
    "InstagramSubcode",
    "LinkedInDailyLimit",
    "LinkedInHeader",
    "LinkedInPath",
    "YouTubeHeader",
    "YouTubePath",
    "YouTubeReason",
]

# -- webhook events: what a workspace's webhooks subscribe to (docs/api.md) -------------------
DELIVERY_PUBLISHED: Final = "delivery.published"
DELIVERY_FAILED: Final = "delivery.failed"
#: Herald stopped checking on its own whether a post landed: the user has to decide.
DELIVERY_UNCONFIRMED: Final = "delivery.unconfirmed"
CHANNEL_NEEDS_REAUTH: Final = "channel.needs_reauth"
#: Another webhook of the workspace was disabled after failing too long.
WEBHOOK_DISABLED: Final = "webhook.disabled"
#: A platform API version Herald speaks retires soon, or a platform answered from another
#: one; sent to workspaces with a channel on that platform.
PLATFORM_VERSION_RETIRING: Final = "platform.version_retiring"
#: Every webhook event, in the order the API lists them.
WEBHOOK_EVENTS: Final = (
    DELIVERY_PUBLISHED,
    DELIVERY_FAILED,
    DELIVERY_UNCONFIRMED,
    CHANNEL_NEEDS_REAUTH,
    WEBHOOK_DISABLED,
    PLATFORM_VERSION_RETIRING,
)

#: How long LinkedIn is paused after refusing the API version Herald speaks (426) before
#: Herald asks again: the posts wait for an operator to update linkedin.api_version.
LINKEDIN_VERSION_REFUSED_PAUSE_S: Final = 600.0

# -- API headers: what clients send and read (docs/api.md, "Retrying writes") -----------------
#: A client's name for one write, sent again with each retry of it: the write is done once.
IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
#: What such a key may be: 1 to 255 printable ASCII characters, spaces only inside (HTTP drops
#: them at the ends); a UUID is the usual choice.
IDEMPOTENCY_KEY_PATTERN: Final = r"^[!-~](?:[ -~]{0,253}[!-~])?$"
#: ``true`` on an answer that is the stored answer of an earlier request with the same key.
IDEMPOTENCY_REPLAYED_HEADER: Final = "Idempotency-Replayed"

# -- PostgreSQL: names other processes on the same database see -------------------------------
#: LISTEN/NOTIFY channel for "work is due", followed by the schema name (63 bytes at most).
NOTIFY_PREFIX: Final = "herald.v1.due."
#: Advisory lock taken while migrating, followed by the schema name.
MIGRATION_LOCK_PREFIX: Final = "herald.migrations:"
#: PostgreSQL advisory lock (on the directory) a run of ``herald admin move-workspace`` holds
#: for its workspace: ``herald.move:<workspace id>``.
MOVE_LOCK_PREFIX: Final = "herald.move:"
#: Advisory lock a webhook sender's claim holds, followed by the schema name: claims take
#: turns, so each counts the others' events in flight (the fairness caps).
OUTBOX_LOCK_PREFIX: Final = "herald.outbox:"
#: Advisory lock engines recording a platform event take turns under, followed by the
#: schema name, the platform and the event: each sees what the one before it recorded.
PLATFORM_EVENT_LOCK_PREFIX: Final = "herald.platform_event:"

# -- regions: a region's name is part of queue and stream names -------------------------------
#: The region of a deployment that never names one.
DEFAULT_REGION: Final = "default"
#: What a region's name may be: short, lower case, safe in a key, a queue name and a URL.
REGION_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,31}$"

# -- Redis Streams queue: names every dispatcher and worker sharing a Redis must agree on ------
#: Stream keys are ``{prefix}:{platform}:{region}``, e.g. ``herald:v1:jobs:facebook:eu``.
REDIS_QUEUE_PREFIX: Final = "herald:v1:jobs"
#: The consumer group every worker of a deployment reads in: each entry goes to one of them.
REDIS_QUEUE_GROUP: Final = "workers"
#: The format of an entry (its ``v`` field): "2", a JSON array of jobs in its ``jobs`` field
#: ("1", one job in ``job``, is still read); a worker acks and drops a version it cannot read.
REDIS_QUEUE_VERSION: Final = "2"

# -- RabbitMQ queue: names every dispatcher and worker sharing a broker must agree on ----------
#: Queues are ``{prefix}.{platform}.{region}`` (``herald.v1.jobs.facebook.eu``), fed by the
#: direct exchange ``{prefix}`` with routing key ``{platform}.{region}``; messages redelivered
#: too often go to the exchange ``{prefix}.dead`` and its one queue ``{prefix}.dead``.
RABBIT_QUEUE_PREFIX: Final = "herald.v1.jobs"
#: The format of a message (its ``v`` header): "2", a JSON array of jobs ("1", one job, is still
#: read); a worker dead-letters a version it cannot read.
RABBIT_QUEUE_VERSION: Final = "2"


# -- Graph API (Facebook and Instagram) ------------------------------------------------------
class GraphCode(IntEnum):
    """The ``code`` of a Graph ``{"error": ...}`` body. Graph throttles in the body, usually
    with HTTP 400, so the code is what names a limit."""

    SERVICE_ERROR = 2  # a temporary problem on Graph's side: "retry your request later"
    TOO_MANY_CALLS = 4  # "Application request limit reached": the app's rolling hour
    USER_TOO_MANY_CALLS = 17  # "User request limit reached"
    PAGE_TOO_MANY_CALLS = 32  # "Page request limit reached": the Page's rolling 24 hours
    INVALID_TOKEN = 190  # invalid, expired or revoked token (``error_subcode`` says which)
    APP_LIMIT_REACHED = 341  # "Application limit reached"
    DUPLICATE_POST = 506  # "Duplicate status message": the same text posted again
    RATE_LIMIT_EXCEEDED = 613  # "Calls to this api have exceeded the rate limit"
    PAGE_ACCOUNT_TOO_MANY_CALLS = 80001  # "too many calls to this Page account"
    INSTAGRAM_ACCOUNT_TOO_MANY_CALLS = 80002  # the same for an Instagram account


#: Throttles that bind the whole app.
GRAPH_APP_THROTTLE_CODES: Final = frozenset(
    {GraphCode.TOO_MANY_CALLS, GraphCode.USER_TOO_MANY_CALLS, GraphCode.APP_LIMIT_REACHED}
)
#: Throttles that bind one Page or Instagram account.
GRAPH_PAGE_THROTTLE_CODES: Final = frozenset(
    {
        GraphCode.PAGE_TOO_MANY_CALLS,
        GraphCode.RATE_LIMIT_EXCEEDED,
        GraphCode.PAGE_ACCOUNT_TOO_MANY_CALLS,
        GraphCode.INSTAGRAM_ACCOUNT_TOO_MANY_CALLS,
    }
)
#: "(#200)" to "(#299)": the token lacks a permission for this node or action.
GRAPH_PERMISSION_CODES: Final = range(200, 300)


class GraphHeader(StrEnum):
    """Usage headers: JSON objects of percentages of a limit."""

    APP_USAGE = "X-App-Usage"  # the app's: an object of :data:`GRAPH_USAGE_FIELDS`
    BUSINESS_USE_CASE_USAGE = "X-Business-Use-Case-Usage"  # per Page or account id: a list


#: On every Graph answer: the version that made it, which is not the one asked for once that
#: one is past its end of life (Graph serves the oldest live version instead).
GRAPH_VERSION_HEADER: Final = "facebook-api-version"
#: The shares of a limit each usage entry reports, in percent.
GRAPH_USAGE_FIELDS: Final = ("call_count", "total_cputime", "total_time")
#: Minutes until a throttled Page or account may call again (Business Use Case entries).
GRAPH_REGAIN_FIELD: Final = "estimated_time_to_regain_access"


class GraphEdge(StrEnum):
    """The edges Herald calls, after ``/{version}/{node}/``."""

    FEED = "feed"  # POST: a Page post with text and link, or attached photos
    PHOTOS = "photos"  # POST: one photo, published or kept to attach
    PUBLISHED_POSTS = "published_posts"  # GET: the Page's posts, newest first
    POSTS = "posts"  # GET: the posts the Page made (the simulator lists the same)
    MEDIA = "media"  # POST: an Instagram container; GET: the account's media
    MEDIA_PUBLISH = "media_publish"  # POST: publish a finished container
    INSIGHTS = "insights"  # GET: a Page post's or an Instagram media's lifetime metrics


# -- Instagram (Graph API) --------------------------------------------------------------------
class InstagramCode(IntEnum):
    """Instagram's own Graph error codes."""

    SERVER_ERROR = -1  # "Instagram server error. Try again."
    MEDIA_TIMEOUT = -2  # the media took too long to fetch, or the container expired
    PUBLISH_LIMIT = 9  # the account's rolling-24 h publishing or container limit
    MEDIA_DOWNLOAD_FAILED = 9004  # the media URL does not meet Instagram's requirements
    NOT_READY = 9007  # ``media_publish`` before the container is ready
    IMAGE_TOO_LARGE = 36000  # the image is over 8 MiB
    RESTRICTED = 4  # with RESTRICTED_ACTIVITY: the account is held back as spam


class InstagramSubcode(IntEnum):
    """``error_subcode`` values that name the same two cases more precisely."""

    SERVER_ERROR = 2207001  # with code -1: an Instagram server error
    NOT_READY = 2207027  # "Media ID is not available"
    MEDIA_DOWNLOAD_FAILED = 2207052  # "Media download has failed"
    IMAGE_TOO_LARGE = 2207004  # "The image size is too large"
    RESTRICTED_ACTIVITY = 2207051  # "We restrict certain activity to protect our community"


class ContainerStatus(StrEnum):
    """A media container's ``status_code``."""

    IN_PROGRESS = "IN_PROGRESS"  # the media is being processed
    FINISHED = "FINISHED"  # ready for ``media_publish``
    PUBLISHED = "PUBLISHED"
    EXPIRED = "EXPIRED"  # left unpublished for 24 hours
    ERROR = "ERROR"  # failed; ``status`` then carries the subcode


# -- LinkedIn (Posts API, Rest.li) ------------------------------------------------------------
class LinkedInPath(StrEnum):
    """The endpoints Herald calls, after ``linkedin.base_url``."""

    POSTS = "/rest/posts"
    IMAGES = "/rest/images"
    SOCIAL_ACTIONS = "/rest/socialActions"  # GET /{urn}: a post's likes and comments summary
    POST_ANALYTICS = "/rest/memberCreatorPostAnalytics"  # GET ?q=entity: a member post's counts


class LinkedInHeader(StrEnum):
    """Headers every ``/rest`` call sends, and the one a created post comes back in."""

    VERSION = "LinkedIn-Version"  # the API version a request is written against, ``YYYYMM``
    RESTLI_PROTOCOL = "X-Restli-Protocol-Version"  # every Rest.li call names its protocol
    RESTLI_ID = "x-restli-id"  # the URN of the post a ``POST /rest/posts`` created


#: The Rest.li protocol Herald speaks; LinkedIn refuses a call that does not name it.
RESTLI_PROTOCOL_VERSION: Final = "2.0.0"
#: The input error code of a 422 that refuses a commentary the author already posted.
LINKEDIN_DUPLICATE_POST: Final = "DUPLICATE_POST"


class LinkedInDailyLimit(StrEnum):
    """What a 429's message names when a daily limit is used up: "Resource level throttle
    MEMBER DAY limit ..." (the member's) or "... APPLICATION DAY limit ..." (the app's)."""

    MEMBER = "MEMBER DAY"
    APPLICATION = "APPLICATION DAY"


# -- YouTube (Data API v3) --------------------------------------------------------------------
class YouTubePath(StrEnum):
    """The endpoints Herald calls, after ``youtube.base_url`` (uploads: ``upload_url``)."""

    UPLOAD = "/upload/youtube/v3/videos"  # videos.insert; ``uploadType=resumable``
    CHANNELS = "/youtube/v3/channels"
    PLAYLIST_ITEMS = "/youtube/v3/playlistItems"
    VIDEOS = "/youtube/v3/videos"  # videos.list: videos by id


class YouTubeHeader(StrEnum):
    """The size and type of the video an upload session will carry."""

    UPLOAD_LENGTH = "X-Upload-Content-Length"
    UPLOAD_TYPE = "X-Upload-Content-Type"


class YouTubeReason(StrEnum):
    """``error.errors[].reason`` values."""

    QUOTA_EXCEEDED = "quotaExceeded"  # 403: the project's daily quota is used up
    RATE_LIMIT_EXCEEDED = "rateLimitExceeded"  # 403: a short-term rate limit
    UPLOAD_LIMIT_EXCEEDED = "uploadLimitExceeded"  # 400: the channel's uploads for today


# -- the shared rate limiter (herald.limits.redis) ------------------------------------------
#: Every Redis key of the shared limiter starts with this (``limits.redis_prefix``): sliding
#: logs ``:log:``, their totals ``:sum:``, day counters ``:day:``, GCRA times ``:tat:``,
#: pauses ``:pause:``, and the ``:rebuilt`` marker and ``:rebuild-lock``.
LIMITS_KEY_PREFIX: Final = "herald:v1:limits"
#: Every Redis key of the shared concurrency caps starts with this (``limits.caps_prefix``):
#: the slots of each cap ``:slots:{platform}:{scope}:{subject}`` and the server ``:marker``.
CAPS_KEY_PREFIX: Final = "herald:v1:caps"
