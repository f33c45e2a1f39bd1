"""Workspaces and their API keys: issued once, stored hashed, found by a public prefix.

A key reads ``hk_<8 hex>_<40 hex>``: ``hk_<8 hex>`` is its public *prefix* (shown in listings,
used to find the key), the rest a 160-bit random secret of which only the SHA-256 is stored.
The secret is shown once, when the key is made; a lost key is revoked and replaced. Keys are
compared in constant time, and a revoked key is refused like an unknown one.

In a deployment of several regions, a workspace lives whole in its home region's database and
the global :class:`~herald.types.Directory` records where (its id, its keys' prefixes and
hashes, its region). Writes reach the directory in the order that never lets it send a caller
to a region that does not hold what it names: a workspace and a key are recorded in the
directory first (one recorded without its rows finds nothing and is refused, as an unknown key
is), revocations and erasures in the region's database first (the database is what decides).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from herald.domain import DEFAULT_WORKSPACE, ApiKey, Workspace, WorkspaceHome, new_id, utcnow
from herald.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from herald.service.ownership import owned_one
from herald.types import Catalog, Directory

__all__ = ["KEY_PATTERN", "IssuedKey", "Tenancy", "hash_secret"]

#: What a well-formed key looks like; anything else is refused before the store is asked.
KEY_PATTERN = re.compile(r"^(hk_[0-9a-f]{8})_([0-9a-f]{40})$")
_PREFIX_TRIES = 5  # a new random prefix on the (rare) clash with an existing key


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key and its secret, which is never shown again."""

    key: ApiKey
    token: str  # the whole key, as the caller sends it: ``Authorization: Bearer <token>``


class Tenancy:
    """Workspaces and keys of one region's database (``store``); with ``directory``, a
    deployment of several regions, of which ``region`` is this database's."""

    def __init__(
        self,
        store: Catalog,
        *,
        clock: Callable[[], datetime] = utcnow,
        directory: Directory | None = None,
        region: str | None = None,
    ) -> None:
        if directory is not None and region is None:
            raise ValueError("a tenancy with a directory needs its database's region")
        self._store = store
        self._clock = clock
        self._directory = directory
        self._region = region

    async def create_workspace(self, name: str, *, key_name: str = "first key") -> IssuedKey:
        """A new workspace with its first API key (with a directory: in this region)."""
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("a workspace name has 1 to 200 characters", field="name")
        workspace = Workspace(new_id("ws"), name, created_at=self._clock())
        if self._directory is not None and self._region is not None:
            home = WorkspaceHome(workspace.id, self._region, workspace.created_at)
            await self._directory.add_workspace(home)
        await self._store.add_workspace(workspace)
        return await self._issue(workspace.id, key_name)  # homed here just now

    async def issue_key(self, workspace_id: str, name: str) -> IssuedKey:
        workspace = await self._store.get_workspace(workspace_id)  # NotFound if unknown
        await self._homed(workspace)
        return await self._issue(workspace_id, name)

    async def _issue(self, workspace_id: str, name: str) -> IssuedKey:
        for _ in range(_PREFIX_TRIES):
            prefix = f"hk_{secrets.token_hex(4)}"
            secret = secrets.token_hex(20)  # 160 bits
            key = ApiKey(new_id("key"), workspace_id, prefix, name, created_at=self._clock())
            if await self._store.api_key_by_prefix(prefix) is not None:
                continue
            digest = hash_secret(secret)
            if self._directory is not None:
                # Prefixes are unique across regions: the directory is where that is known.
                if await self._directory.key(prefix) is not None:
                    continue
                await self._directory.add_key(key, digest)
            await self._store.add_api_key(key, digest)
            return IssuedKey(key, f"{prefix}_{secret}")
        raise InvalidInput("could not find a free key prefix; try again")  # pragma: no cover

    async def _homed(self, workspace: Workspace) -> None:
        """Before a key of ``workspace`` changes: the directory places it here, not being
        moved (its keys' rows are about to be copied and deleted). One this database holds
        that the directory does not know (made before the deployment had regions) is
        recorded here, as ``herald admin sync-directory`` would."""
        directory, region = self._directory, self._region
        if directory is None or region is None:
            return
        home = await directory.workspace(workspace.id)
        if home is None:
            await directory.add_workspace(WorkspaceHome(workspace.id, region, workspace.created_at))
            return
        if home.moving_to is not None:
            raise Conflict(
                f"workspace {workspace.id!r} is being moved to {home.moving_to}: its keys "
                "change once the move is over (or given up)"
            )
        if home.region != region:
            raise Conflict(
                f"workspace {workspace.id!r} lives in {home.region}, not {region}: see "
                "`herald admin sync-directory`"
            )

    async def authenticate(self, token: str) -> ApiKey:
        """The live key ``token`` stands for; :class:`Unauthenticated` otherwise."""
        match = KEY_PATTERN.match(token)
        if match is None:
            raise Unauthenticated("the API key is malformed")
        found = await self._store.api_key_by_prefix(match.group(1))
        if found is None:
            raise Unauthenticated("the API key is unknown or revoked")
        key, digest = found
        if not hmac.compare_digest(digest, hash_secret(match.group(2))) or key.revoked_at:
            raise Unauthenticated("the API key is unknown or revoked")
        return key

    async def delete_workspace(self, workspace_id: str, *, confirm: str) -> dict[str, int]:
        """Erase the workspace and everything of it, its keys too (the caller's own key stops
        working at once); how many rows of each kind went. ``confirm`` must repeat the
        workspace's id: an erasure cannot be undone."""
        if confirm != workspace_id:
            raise InvalidInput(
                "deleting a workspace erases all of its data and cannot be undone: repeat the "
                "workspace's id to confirm",
                field="confirm",
            )
        if workspace_id == DEFAULT_WORKSPACE:
            raise Conflict(
                "the default workspace holds what is made without one (the CLI's channels); "
                "it cannot be deleted"
            )
        if self._directory is None:
            return await self._store.erase_workspace(workspace_id)
        home = await self._directory.workspace(workspace_id)
        if home is not None and home.moving_to is not None:
            raise Conflict(
                f"workspace {workspace_id!r} is being moved to {home.moving_to}: finish the "
                "move (or give it up) first"
            )
        try:
            counts = await self._store.erase_workspace(workspace_id)
        except NotFound:
            if home is None:
                raise
            # Erased before, and the directory not told (its write failed): finish that.
            counts = {}
        await self._directory.remove_workspace(workspace_id)
        return counts

    async def list_keys(self, workspace_id: str) -> list[ApiKey]:
        return await self._store.list_api_keys(workspace_id)

    async def get_key(self, workspace_id: str, key_id: str) -> ApiKey:
        return owned_one(await self._store.list_api_keys(workspace_id), key_id, "api key")

    async def revoke_key(self, workspace_id: str | None, key_id: str) -> ApiKey | None:
        """Revoke a key of ``workspace_id`` (None: any workspace, for operators)."""
        if workspace_id is not None:
            await self.get_key(workspace_id, key_id)
        if self._directory is None:
            await self._store.revoke_api_key(key_id, self._clock())
            return None if workspace_id is None else await self.get_key(workspace_id, key_id)
        known = await self._directory.key_by_id(key_id)
        owner = workspace_id or (known.workspace_id if known is not None else None)
        if owner is None:
            raise NotFound("api key", key_id)
        await self._homed(await self._store.get_workspace(owner))
        # A move that began meanwhile holds the key's row until it deletes it: the revocation
        # then finds no row here (NotFound), rather than revoking a row about to go while its
        # copy in the new region stays live. Run again, it reaches the new region.
        await self._store.revoke_api_key(key_id, self._clock())
        await self._directory.revoke_key(key_id)
        return None if workspace_id is None else await self.get_key(workspace_id, key_id)
