"""Secrets at rest: channel credentials and webhook signing secrets, encrypted in the store.

- :class:`Vault`: Fernet (AES-128-CBC + HMAC-SHA256, authenticated) under a *list* of keys from
  ``Settings.secret_keys``: the first encrypts, every one decrypts (``MultiFernet``), so keys
  rotate without downtime: put a new key first, run ``herald admin rotate-keys``, then drop
  the old key.
- :class:`VaultResolver`: a :class:`~herald.types.CredentialResolver` for channels whose
  ``credentials_ref`` is ``vault:``: it reads the ciphertext with
  ``store.get_channel_secret`` and decrypts it.
- :class:`CompositeResolver`: routes each reference to the resolver of its scheme, so one
  engine resolves ``vault:``, ``env:`` and ``file:`` channels side by side.
- :func:`rotate_secrets`: re-encrypts every stored secret (channels' and webhooks', in every
  workspace) under the first key.

Plaintext secrets never reach a log line, an exception message or an API response.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from herald.config import Settings
from herald.domain import Channel
from herald.errors import AuthExpired, ConfigError, HeraldError, NotFound
from herald.service.credentials import RefResolver
from herald.types import CredentialResolver, Credentials, EngineStore, Store

__all__ = [
    "VAULT_REF",
    "CompositeResolver",
    "RotationReport",
    "SecretUnreadable",
    "Vault",
    "VaultResolver",
    "build_resolver",
    "rotate_secrets",
]

#: The ``credentials_ref`` of a channel whose credentials are kept, encrypted, in the store.
VAULT_REF = "vault:"

log = logging.getLogger("herald.vault")


class SecretUnreadable(HeraldError):
    """A ciphertext that none of the configured keys can decrypt (or that was tampered with)."""


class Vault:
    """Authenticated encryption under a list of keys; the first one encrypts."""

    def __init__(self, keys: Sequence[SecretStr | str]) -> None:
        if not keys:
            raise ConfigError(
                "no secret key configured: set HERALD_SECRET_KEYS (make one with "
                "`herald admin new-secret-key`)"
            )
        raw = [k.get_secret_value() if isinstance(k, SecretStr) else k for k in keys]
        try:
            self._fernets = [Fernet(k) for k in raw]
        except ValueError:
            raise ConfigError("a secret key is not a valid Fernet key") from None
        self._multi = MultiFernet(self._fernets)

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        return cls(settings.secret_keys)

    def encrypt(self, plaintext: bytes) -> bytes:
        return self._multi.encrypt(plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        try:
            return self._multi.decrypt(ciphertext)
        except InvalidToken:
            raise SecretUnreadable("a stored secret cannot be decrypted with any key") from None

    def encrypt_json(self, value: Mapping[str, str]) -> bytes:
        return self.encrypt(json.dumps(dict(value), separators=(",", ":")).encode())

    def decrypt_json(self, ciphertext: bytes) -> dict[str, str]:
        try:
            value = json.loads(self.decrypt(ciphertext))
        except ValueError:  # not JSON, or not UTF-8: the error would carry the plaintext
            raise SecretUnreadable("a stored secret is not a JSON object") from None
        if not isinstance(value, dict):
            raise SecretUnreadable("a stored secret is not a JSON object")
        return {str(k): str(v) for k, v in value.items()}

    def is_current(self, ciphertext: bytes) -> bool:
        """Whether ``ciphertext`` is already under the first (encrypting) key."""
        try:
            self._fernets[0].decrypt(ciphertext)
        except InvalidToken:
            return False
        return True

    def rotate(self, ciphertext: bytes) -> bytes:
        """The same secret, encrypted under the first key."""
        try:
            return self._multi.rotate(ciphertext)
        except InvalidToken:
            raise SecretUnreadable("a stored secret cannot be decrypted with any key") from None


class VaultResolver:
    """Implements :class:`herald.types.CredentialResolver` for ``vault:`` channels.

    Decrypted credentials are cached per channel for ``ttl_s`` and dropped at once when the
    platform refuses them (the engine calls :meth:`forget`), so a re-authorised channel is
    picked up at its next attempt.
    """

    def __init__(self, store: EngineStore, vault: Vault, *, ttl_s: float = 60.0) -> None:
        self._store = store
        self._vault = vault
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, dict[str, str]]] = {}

    async def resolve(self, channel: Channel) -> Credentials:
        now = time.monotonic()
        hit = self._cache.get(channel.id)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            ciphertext = await self._store.get_channel_secret(channel.id)
        except NotFound as exc:
            raise AuthExpired(f"channel {channel.id} no longer exists") from exc
        if ciphertext is None:
            raise AuthExpired(f"channel {channel.id} has no stored credentials")
        try:
            secrets = self._vault.decrypt_json(ciphertext)
        except SecretUnreadable as exc:
            raise AuthExpired(f"the credentials of channel {channel.id}: {exc}") from exc
        self._cache[channel.id] = (now + self._ttl_s, secrets)
        return secrets

    def forget(self, channel: Channel) -> None:
        self._cache.pop(channel.id, None)


class CompositeResolver:
    """Routes each ``credentials_ref`` to the resolver of its scheme (``vault``, ``env``...)."""

    def __init__(self, by_scheme: Mapping[str, CredentialResolver]) -> None:
        self._by_scheme = dict(by_scheme)

    def _for(self, channel: Channel) -> CredentialResolver:
        scheme = channel.credentials_ref.partition(":")[0]
        resolver = self._by_scheme.get(scheme)
        if resolver is None:
            if scheme == VAULT_REF.rstrip(":"):
                raise AuthExpired(
                    f"channel {channel.id} keeps its credentials in the vault, and no secret "
                    "key is configured (HERALD_SECRET_KEYS)"
                )
            raise AuthExpired(f"unsupported credentials reference scheme {scheme!r}")
        return resolver

    async def resolve(self, channel: Channel) -> Credentials:
        return await self._for(channel).resolve(channel)

    def forget(self, channel: Channel) -> None:
        resolver = self._by_scheme.get(channel.credentials_ref.partition(":")[0])
        if resolver is not None:
            resolver.forget(channel)


def build_resolver(settings: Settings, store: EngineStore) -> CompositeResolver:
    """``env:`` and ``file:`` always; ``vault:`` when a secret key is configured."""
    refs = RefResolver()
    by_scheme: dict[str, CredentialResolver] = {"env": refs, "file": refs}
    if settings.secret_keys:
        by_scheme["vault"] = VaultResolver(store, Vault.from_settings(settings))
    return CompositeResolver(by_scheme)


@dataclass(frozen=True, slots=True)
class RotationReport:
    channels_rotated: int
    webhooks_rotated: int
    #: ``channel <id>`` / ``webhook <id>`` whose secret no configured key decrypts: left as it
    #: was, and unusable whatever the keys until it is given again (re-authorise the channel,
    #: re-create the webhook). The others are rotated all the same.
    unreadable: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.unreadable


async def rotate_secrets(store: Store, vault: Vault) -> RotationReport:
    """Re-encrypt under the first key every stored secret still under an older one: the
    credentials of every channel and the signing secret of every webhook, in every workspace
    (deleted channels and webhooks, whose secrets are never read again, are left alone).

    Running it again rewrites nothing. Once it has run, only the first key is needed to read
    any secret it could read: the older keys can be dropped. Run it while nobody changes
    credentials: a channel re-authorised between its read and its write here would get its
    previous credentials back.
    """
    unreadable: list[str] = []
    channels = webhooks = 0
    for channel in await store.list_channels():
        # Whatever the channel's reference says now: no secret may stay that only an old key
        # can read.
        ciphertext = await store.get_channel_secret(channel.id)
        done = await _reencrypt(vault, ciphertext, partial(store.set_channel_secret, channel.id))
        if done is None:
            unreadable.append(f"channel {channel.id}")
        elif done:
            channels += 1
    # Every workspace, not only those with channels: a webhook needs none.
    for workspace in await store.list_workspaces():
        for webhook in await store.list_webhooks(workspace.id):
            try:
                ciphertext = await store.get_webhook_secret(webhook.id)
                write = partial(store.set_webhook_secret, webhook.id)
                done = await _reencrypt(vault, ciphertext, write)
            except NotFound:
                continue  # deleted meanwhile: its secret will never be read again
            if done is None:
                unreadable.append(f"webhook {webhook.id}")
            elif done:
                webhooks += 1
    log.info(
        "vault.rotated",
        extra={"channels": channels, "webhooks": webhooks, "unreadable": len(unreadable)},
    )
    return RotationReport(channels, webhooks, tuple(unreadable))


async def _reencrypt(
    vault: Vault, ciphertext: bytes | None, write: Callable[[bytes], Awaitable[None]]
) -> bool | None:
    """Write ``ciphertext`` back under the first key. True: rewritten; False: nothing to do
    (no secret, or already under the first key); None: no configured key decrypts it."""
    if ciphertext is None or vault.is_current(ciphertext):
        return False
    try:
        rotated = vault.rotate(ciphertext)
    except SecretUnreadable:
        return None
    await write(rotated)
    return True
