"""What every connector is made of: its platform's HTTP client, error table and content rules.

A connector names its platform and its table of docs/platforms.md (``classify``, as a
static method) and adds the calls; how it is built from the settings, how its error answers
become Herald errors, which rules its content must meet and how it closes are the same for
all four.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from herald.config import PlatformSettings
from herald.domain import Content, Platform, utcnow
from herald.egress.policy import EgressPolicy
from herald.errors import PlatformError
from herald.platforms.answers import Clock, ErrorAnswer, Translator
from herald.platforms.http import HttpClient
from herald.platforms.rules import VALIDATORS, ensure_valid
from herald.types import VersionObserver

__all__ = ["HttpConnector"]

#: The connector's own settings class.
S = TypeVar("S", bound=PlatformSettings)


class HttpConnector(Generic[S]):
    """The shared half of a :class:`~herald.types.Connector` that speaks HTTP.

    ``throttle_pause_s`` is the wait when a throttle names none; ``clock`` dates the error
    answers (a ``Retry-After`` date, the wait until a platform's midnight); ``egress`` is
    where media may be downloaded from (public addresses only, by default); ``versions`` is
    told which API version answered, where the platform says (:mod:`herald.engine.versions`).
    """

    platform: Platform

    def __init__(
        self,
        settings: S,
        *,
        throttle_pause_s: float,
        clock: Clock = utcnow,
        egress: EgressPolicy | None = None,
        versions: VersionObserver | None = None,
    ) -> None:
        self._settings = settings
        self._versions = versions
        self._pause_s = throttle_pause_s
        self._clock = clock
        self._http = HttpClient(self.platform.value, settings, egress=egress)
        self._fail = Translator(self.classify, pause_s=throttle_pause_s, clock=clock)

    @staticmethod
    def classify(answer: ErrorAnswer) -> PlatformError:
        """The platform's table: one error answer -> one Herald error."""
        raise NotImplementedError

    def validate(self, content: Content) -> None:
        VALIDATORS[self.platform](content)

    def _ensure_valid(self, content: Content) -> None:
        """The rules again, at publish time, before any request (:func:`.rules.ensure_valid`)."""
        ensure_valid(VALIDATORS[self.platform], content, self.platform.value)

    async def aclose(self) -> None:
        await self._http.aclose()
