"""A platform's error answer, what decides its meaning, and the meaning all platforms share.

Each connector turns an error answer into one Herald error, by the platform's table in
docs/platforms.md. The meaning depends on more than the status, headers and body: the time
(a ``Retry-After`` date, the wait until a platform's midnight), the pause to take when a
throttle names no wait, whether the request could have made a post (then no answer proves
it did not), and, on Graph, whose usage to read. :class:`ErrorAnswer` carries all of it, so
every platform's ``classify`` is a :data:`Classifier`, and a :class:`Translator` binds one
to its connector's clock and pause.

:func:`by_status` is the last row of the Graph, LinkedIn and YouTube tables: what the HTTP
status alone says once the platform's own codes and reasons have been read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.errors import (
    AuthExpired,
    ContentRejected,
    LimitScope,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    TransientPlatformError,
)
from herald.platforms.http import HttpResponse, json_body, retry_after_s

__all__ = ["Classifier", "Clock", "ErrorAnswer", "Translator", "by_status"]

#: Where a connector reads the time: it dates error answers (a ``Retry-After`` date, the wait
#: until a platform's midnight); tests pass a fixed one.
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """An error answer, with the circumstances its meaning depends on."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    now: datetime
    #: The wait when a throttle says nothing about how long (``engine.throttle_pause_s``).
    pause_s: float
    #: The request could have made a post: an answer that proves nothing leaves it unknown.
    creates_post: bool = False
    #: The Page or account acting (Graph usage headers are keyed by it).
    channel_id: str | None = None

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is empty or not JSON."""
        return json_body(self.body)

    def retry_after(self) -> float | None:
        """Seconds the answer's own ``Retry-After`` asks for, if it names any."""
        return retry_after_s(self.status, self.headers, self.now)

    def throttle(
        self, message: str, *, scope: LimitScope, regain_s: float | None = None, **kw: Any
    ) -> RateLimited:
        """A throttle lasting what the answer names: its ``Retry-After``, else ``regain_s``
        (a platform's own estimate, read by the caller), else the configured pause, marked
        ``named=False`` so that the engine lengthens it while such throttles keep coming."""
        wait = self.retry_after()
        if wait is None:
            wait = regain_s
        if wait is None:
            return RateLimited(message, retry_after=self.pause_s, scope=scope, named=False, **kw)
        return RateLimited(message, retry_after=wait, scope=scope, **kw)


#: One platform's table: an error answer -> one Herald error.
Classifier = Callable[[ErrorAnswer], PlatformError]


class Translator:
    """A connector's :data:`Classifier` with its clock and throttle pause."""

    def __init__(self, classify: Classifier, *, pause_s: float, clock: Clock) -> None:
        self._classify = classify
        self._pause_s = pause_s
        self._clock = clock

    def __call__(
        self, resp: HttpResponse, *, creates_post: bool = False, channel_id: str | None = None
    ) -> PlatformError:
        answer = ErrorAnswer(
            resp.status,
            resp.headers,
            resp.body,
            now=self._clock(),
            pause_s=self._pause_s,
            creates_post=creates_post,
            channel_id=channel_id,
        )
        return self._classify(answer)


def by_status(
    answer: ErrorAnswer, message: str, *, platform: str, code: str | None = None
) -> PlatformError:
    """What an error answer means by its HTTP status alone."""
    status = answer.status
    kw: dict[str, Any] = {"platform": platform, "status": status, "code": code}
    if status == 429:
        return answer.throttle(message, scope="app", **kw)
    if status in (401, 403):
        return AuthExpired(message, **kw)
    if 400 <= status < 500:
        return ContentRejected(message, **kw)
    if answer.creates_post:
        # The publish request reached the platform and the answer says nothing: the post
        # may exist. docs/platforms.md: look it up before anything is sent again.
        return OutcomeUnknown(message, **kw)
    explicit = answer.retry_after()
    if explicit is not None:
        return RateLimited(message, retry_after=explicit, scope="app", **kw)
    return TransientPlatformError(message, **kw)
