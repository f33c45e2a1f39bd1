"""The global directory in memory: for tests and for a deployment's tooling run in one process.

Keeps what :class:`~herald.stores.directory_postgres.PostgresDirectory` keeps, with the same
answers (both pass ``tests/suites/directory_contract.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from herald.domain import ApiKey, KeyHome, WorkspaceHome
from herald.errors import Conflict, NotFound
from herald.stores.directory_common import busy_move, check_move

__all__ = ["MemoryDirectory"]


@dataclasses.dataclass(slots=True)
class _Key:
    key_id: str
    workspace_id: str
    digest: str
    revoked: bool = False


class MemoryDirectory:
    def __init__(self) -> None:
        self._homes: dict[str, WorkspaceHome] = {}
        self._keys: dict[str, _Key] = {}  # by prefix
        self._moving: set[str] = set()  # workspaces a run of a move holds

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def add_workspace(self, home: WorkspaceHome) -> None:
        if home.workspace_id in self._homes:
            raise Conflict(f"workspace {home.workspace_id!r} is already in the directory")
        self._homes[home.workspace_id] = dataclasses.replace(home, moving_to=None)

    async def workspace(self, workspace_id: str) -> WorkspaceHome | None:
        return self._homes.get(workspace_id)

    async def workspaces(self, region: str | None = None) -> list[WorkspaceHome]:
        homes = [h for h in self._homes.values() if region is None or h.region == region]
        return sorted(homes, key=lambda h: (h.created_at, h.workspace_id))

    async def remove_workspace(self, workspace_id: str) -> None:
        self._homes.pop(workspace_id, None)
        for prefix in [p for p, k in self._keys.items() if k.workspace_id == workspace_id]:
            del self._keys[prefix]

    async def add_key(self, key: ApiKey, digest: str) -> None:
        if key.workspace_id not in self._homes:
            raise NotFound("workspace", key.workspace_id)
        if key.prefix in self._keys:
            raise Conflict(f"key prefix {key.prefix!r} is already in the directory")
        self._keys[key.prefix] = _Key(
            key.id, key.workspace_id, digest, revoked=key.revoked_at is not None
        )

    async def key(self, prefix: str) -> KeyHome | None:
        found = self._keys.get(prefix)
        if found is None:
            return None
        home = self._homes[found.workspace_id]
        return KeyHome(
            prefix,
            found.key_id,
            found.workspace_id,
            home.region,
            found.digest,
            revoked=found.revoked,
            moving_to=home.moving_to,
        )

    async def key_by_id(self, key_id: str) -> KeyHome | None:
        for prefix, found in self._keys.items():
            if found.key_id == key_id:
                return await self.key(prefix)
        return None

    async def revoke_key(self, key_id: str) -> None:
        for found in self._keys.values():
            if found.key_id == key_id:
                found.revoked = True

    async def begin_move(self, workspace_id: str, to: str) -> WorkspaceHome:
        home = self._homes.get(workspace_id)
        if home is None:
            raise NotFound("workspace", workspace_id)
        check_move(home, to)
        self._homes[workspace_id] = moving = dataclasses.replace(home, moving_to=to)
        return moving

    async def end_move(self, workspace_id: str, *, moved: bool) -> WorkspaceHome:
        home = self._homes.get(workspace_id)
        if home is None:
            raise NotFound("workspace", workspace_id)
        region = home.moving_to if moved and home.moving_to else home.region
        self._homes[workspace_id] = done = dataclasses.replace(home, region=region, moving_to=None)
        return done

    @asynccontextmanager
    async def move_lock(self, workspace_id: str) -> AsyncIterator[None]:
        if workspace_id in self._moving:
            raise Conflict(busy_move(workspace_id))
        self._moving.add(workspace_id)
        try:
            yield
        finally:
            self._moving.discard(workspace_id)
