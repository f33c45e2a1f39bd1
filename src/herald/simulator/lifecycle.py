"""``async with`` for what starts and stops: the simulator, its client, its own process."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["Lifecycle"]


class Lifecycle:
    """Started on entering ``async with``, stopped on leaving it, an error or not."""

    async def start(self) -> None:
        """Nothing to start unless a subclass says otherwise."""

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
