"""Accounts the simulator knows, and the tokens that act for them.

Every account has a *generation*: :meth:`Accounts.reauthorize` starts a new one, and a token
is good only while its generation is current and the account is not revoked. So revoking
kills every token at once, and re-authorising never brings an old token back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from herald.domain import Platform
from herald.simulator.clock import SimClock
from herald.simulator.ids import IdFactory

__all__ = ["Accounts", "SimAccount", "TokenCheck", "TokenStatus", "UnknownAccount"]


class UnknownAccount(LookupError):
    def __init__(self, platform: Platform, external_id: str) -> None:
        super().__init__(f"no {platform.value} account {external_id!r}")


@dataclass(frozen=True, slots=True)
class SimAccount:
    platform: Platform
    external_id: str
    credentials: dict[str, str] = field(hash=False)
    name: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform.value,
            "external_id": self.external_id,
            "credentials": dict(self.credentials),
            "name": self.name,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SimAccount:
        return cls(
            platform=Platform(raw["platform"]),
            external_id=raw["external_id"],
            credentials=dict(raw["credentials"]),
            name=raw.get("name", ""),
        )


class TokenStatus(Enum):
    VALID = "valid"
    MISSING = "missing"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class TokenCheck:
    status: TokenStatus
    account: str | None = None  # the external id, also for revoked or expired tokens

    @property
    def ok(self) -> bool:
        return self.status is TokenStatus.VALID


@dataclass(frozen=True, slots=True)
class _Token:
    platform: Platform
    external_id: str
    generation: int
    expires_at: float | None  # sim-clock time; None: never (Graph Page tokens, LinkedIn)


@dataclass(slots=True)
class _State:
    account: SimAccount
    generation: int = 0
    revoked: bool = False
    restricted: bool = False  # held back as spam: its publishes are refused


@dataclass(frozen=True, slots=True)
class Refreshed:
    access_token: str
    expires_in: int


_ID_SHAPES: dict[Platform, tuple[str, str, int]] = {
    # platform: (prefix, alphabet kind, total length of the random part)
    Platform.FACEBOOK: ("10", "digits", 15),
    Platform.INSTAGRAM: ("17841", "digits", 17),
    Platform.LINKEDIN: ("urn:li:person:", "chars", 10),
    Platform.YOUTUBE: ("UC", "chars", 22),
}


class Accounts:
    def __init__(self, ids: IdFactory, clock: SimClock, *, youtube_token_ttl_s: float) -> None:
        self._ids = ids
        self._clock = clock
        self._ttl_s = youtube_token_ttl_s
        self._accounts: dict[tuple[Platform, str], _State] = {}
        self._tokens: dict[str, _Token] = {}
        self._refresh: dict[str, _Token] = {}
        # One Google OAuth client for the whole app, as Herald has.
        self.client_id = f"{ids.digits('', 12)}-{ids.alnum(32)}.apps.googleusercontent.com"
        self.client_secret = f"GOCSPX-{ids.alnum(28)}"

    # -- catalogue ------------------------------------------------------------------------
    def add(self, platform: Platform, name: str | None = None) -> SimAccount:
        prefix, kind, length = _ID_SHAPES[platform]
        if kind == "digits":
            external_id = self._ids.digits(prefix, length)
        else:
            external_id = self._ids.chars(prefix, length)
        number = sum(1 for key in self._accounts if key[0] is platform) + 1
        state = _State(SimAccount(platform, external_id, {}, name or f"{platform.value} {number}"))
        self._accounts[(platform, external_id)] = state
        self._issue(state)
        return state.account

    def get(self, platform: Platform, external_id: str) -> SimAccount | None:
        state = self._accounts.get((platform, external_id))
        return None if state is None else state.account

    def list(self, platform: Platform | None = None) -> list[SimAccount]:
        return [
            state.account
            for (kind, _), state in self._accounts.items()
            if platform is None or kind is platform
        ]

    def revoke(self, platform: Platform, external_id: str) -> None:
        self._state(platform, external_id).revoked = True

    def restrict(self, platform: Platform, external_id: str) -> None:
        self._state(platform, external_id).restricted = True

    def restricted(self, platform: Platform, external_id: str) -> bool:
        state = self._accounts.get((platform, external_id))
        return state is not None and state.restricted

    def reauthorize(self, platform: Platform, external_id: str) -> dict[str, str]:
        state = self._state(platform, external_id)
        state.generation += 1
        state.revoked = False
        return dict(self._issue(state).credentials)

    # -- tokens ---------------------------------------------------------------------------
    def check(self, platform: Platform, token: str | None) -> TokenCheck:
        if not token:
            return TokenCheck(TokenStatus.MISSING)
        info = self._tokens.get(token)
        if info is None or info.platform is not platform:
            return TokenCheck(TokenStatus.UNKNOWN)
        state = self._accounts[(platform, info.external_id)]
        if state.revoked or info.generation != state.generation:
            return TokenCheck(TokenStatus.REVOKED, info.external_id)
        if info.expires_at is not None and self._clock.now() >= info.expires_at:
            return TokenCheck(TokenStatus.EXPIRED, info.external_id)
        return TokenCheck(TokenStatus.VALID, info.external_id)

    def refresh_owner(self, refresh_token: str) -> str | None:
        info = self._refresh.get(refresh_token)
        return None if info is None else info.external_id

    def refresh(self, refresh_token: str) -> Refreshed | None:
        """A new YouTube access token, or ``None`` when the refresh token is dead."""
        info = self._refresh.get(refresh_token)
        if info is None:
            return None
        state = self._accounts[(info.platform, info.external_id)]
        if state.revoked or info.generation != state.generation:
            return None
        token = self._ids.secret("ya29.")
        self._tokens[token] = _Token(
            info.platform, info.external_id, state.generation, self._clock.now() + self._ttl_s
        )
        # Google answers 3599 for a one-hour token: the second spent in transit.
        return Refreshed(token, max(1, int(self._ttl_s) - 1))

    # -- internals --------------------------------------------------------------------------
    def _state(self, platform: Platform, external_id: str) -> _State:
        state = self._accounts.get((platform, external_id))
        if state is None:
            raise UnknownAccount(platform, external_id)
        return state

    def _issue(self, state: _State) -> SimAccount:
        account = state.account
        platform = account.platform
        token = self._ids.secret(_TOKEN_PREFIX[platform])
        expires = self._clock.now() + self._ttl_s if platform is Platform.YOUTUBE else None
        self._tokens[token] = _Token(platform, account.external_id, state.generation, expires)
        credentials = {"access_token": token}
        if platform is Platform.YOUTUBE:
            refresh = self._ids.secret("1//")
            self._refresh[refresh] = _Token(platform, account.external_id, state.generation, None)
            credentials |= {
                "refresh_token": refresh,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            }
        state.account = SimAccount(platform, account.external_id, credentials, account.name)
        return state.account


_TOKEN_PREFIX = {
    Platform.FACEBOOK: "EAAG",
    Platform.INSTAGRAM: "EAAG",
    Platform.LINKEDIN: "AQV",
    Platform.YOUTUBE: "ya29.",
}
