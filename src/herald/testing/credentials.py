"""A credential resolver for tests: one fixed token for every channel but the refused ones."""

from __future__ import annotations

from collections.abc import Iterable

from herald.domain import Channel
from herald.errors import AuthExpired
from herald.types import Credentials

__all__ = ["StaticCredentials"]


class StaticCredentials:
    """Implements :class:`herald.types.CredentialResolver`."""

    def __init__(self, refused: Iterable[str] = (), *, token: str = "t") -> None:
        self.refused = set(refused)  # channel ids whose secrets "cannot be had"
        self.token = token
        self.forgotten: list[str] = []  # channel ids the engine asked to forget, in order

    async def resolve(self, channel: Channel) -> Credentials:
        if channel.id in self.refused:
            raise AuthExpired("no token for this channel")
        return {"access_token": self.token}

    def forget(self, channel: Channel) -> None:
        self.forgotten.append(channel.id)
