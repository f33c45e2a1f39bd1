"""The CredentialResolver contract: every resolver passes these tests.

``resolve`` returns the channel's secrets as a mapping of str to str; a reference it cannot
serve raises :class:`~herald.errors.AuthExpired`, never another exception (the engine parks
the channel for re-authorisation on that one, and on nothing else); ``forget`` makes the next
``resolve`` read the source again, and forgetting a channel it never resolved is harmless.

A tier provides a ``resolver_rig`` fixture, parametrized over the resolvers it runs
(:func:`opened_rig` builds each kind): a resolver with the source it reads, which the tests
fill and change behind the resolver's back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from herald.domain import Channel
from herald.errors import AuthExpired
from herald.service.credentials import RefResolver, SecretsFile
from herald.service.vault import VAULT_REF, CompositeResolver, Vault, VaultResolver
from herald.testing import StaticCredentials, channel
from herald.types import CredentialResolver, EngineStore
from tests.conftest import opened_store

ONE = {"access_token": "one"}
TWO = {"access_token": "two"}


class ResolverRig:
    """A resolver and the source it reads its secrets from."""

    resolver: CredentialResolver

    async def served(self, secrets: Mapping[str, str]) -> Channel:
        """A channel whose secrets at the source are ``secrets``."""
        raise NotImplementedError

    async def change(self, ch: Channel, secrets: Mapping[str, str]) -> None:
        """Replace the channel's secrets at the source (the user re-authorised it)."""
        raise NotImplementedError

    async def unservable(self) -> dict[str, Channel]:
        """Channels whose references this resolver cannot serve, by what is wrong with them."""
        raise NotImplementedError


class ResolverContract:
    """Runs on every resolver a tier provides (its ``resolver_rig`` fixture)."""

    async def test_is_a_credential_resolver(self, resolver_rig):
        assert isinstance(resolver_rig.resolver, CredentialResolver)

    async def test_resolve_returns_the_secrets(self, resolver_rig):
        ch = await resolver_rig.served(ONE)
        got = await resolver_rig.resolver.resolve(ch)
        assert isinstance(got, Mapping)
        assert dict(got) == ONE
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in got.items())

    async def test_forget_makes_the_next_resolve_read_the_source_again(self, resolver_rig):
        resolver = resolver_rig.resolver
        ch = await resolver_rig.served(ONE)
        assert dict(await resolver.resolve(ch)) == ONE
        await resolver_rig.change(ch, TWO)
        assert dict(await resolver.resolve(ch)) in (ONE, TWO)  # a cached copy may be served
        resolver.forget(ch)
        assert dict(await resolver.resolve(ch)) == TWO

    async def test_forgetting_a_channel_never_resolved_is_harmless(self, resolver_rig):
        resolver = resolver_rig.resolver
        ch = await resolver_rig.served(ONE)
        for stranger in (channel(), channel(credentials_ref="nowhere:at-all"), ch):
            resolver.forget(stranger)
            resolver.forget(stranger)
        assert dict(await resolver.resolve(ch)) == ONE

    async def test_a_reference_it_cannot_serve_is_auth_expired(self, resolver_rig):
        cases = await resolver_rig.unservable()
        assert cases, "a rig names at least one reference its resolver cannot serve"
        wrong = {}
        for name, ch in cases.items():
            try:
                got = await resolver_rig.resolver.resolve(ch)
            except AuthExpired:
                continue
            except Exception as exc:  # the contract is about which one: collect them all
                wrong[name] = f"{type(exc).__name__}: {exc}"
            else:
                wrong[name] = f"served {sorted(got)}"
        assert wrong == {}


def _secrets_json(secrets: Mapping[str, str]) -> str:
    return json.dumps(dict(secrets))


class EnvRig(ResolverRig):
    """``env:`` references, read from an environment the test owns."""

    def __init__(self, resolver: CredentialResolver | None = None) -> None:
        self.environ: dict[str, str] = {}
        self.refs = RefResolver(environ=self.environ)
        self.resolver = resolver or self.refs

    async def served(self, secrets):
        name = f"HERALD_TEST_{uuid.uuid4().hex[:8].upper()}"
        self.environ[name] = _secrets_json(secrets)
        return channel(credentials_ref=f"env:{name}")

    async def change(self, ch, secrets):
        self.environ[ch.credentials_ref.removeprefix("env:")] = _secrets_json(secrets)

    async def unservable(self):
        self.environ.update(HERALD_BLANK=" \n", HERALD_BROKEN="{not json")
        return {
            "an unset variable": channel(credentials_ref="env:HERALD_NOT_SET"),
            "a blank variable": channel(credentials_ref="env:HERALD_BLANK"),
            "a variable that is not JSON": channel(credentials_ref="env:HERALD_BROKEN"),
        }


class FileRig(ResolverRig):
    """``file:`` references into a secrets file the test rewrites."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.file = SecretsFile(folder / "secrets.json")
        self.resolver = RefResolver()

    async def served(self, secrets):
        ch = channel()
        return channel(id=ch.id, credentials_ref=self.file.put(ch.id, secrets))

    async def change(self, ch, secrets):
        self.file.put(ch.id, secrets)

    async def unservable(self):
        self.file.put("ch_other", ONE)
        (self.folder / "garbage.json").write_text("{not json", encoding="utf-8")
        (self.folder / "empty.json").write_text("", encoding="utf-8")
        (self.folder / "latin1.json").write_bytes(b'{"access_token": "caf\xe9"}')
        refs = {
            "a missing file": f"file:{self.folder / 'missing.json'}",
            "a key not in the file": self.file.ref("ch_absent"),
            "a file that is not JSON": f"file:{self.folder / 'garbage.json'}#ch_x",
            "an empty file": f"file:{self.folder / 'empty.json'}",
            "a folder": f"file:{self.folder}",
            "a file that is not UTF-8": f"file:{self.folder / 'latin1.json'}",
            "a path with a NUL byte": f"file:{self.folder / 'sec'}\0rets.json",
        }
        return {name: channel(credentials_ref=ref) for name, ref in refs.items()}


class VaultRig(ResolverRig):
    """``vault:`` channels, their credentials encrypted in a store."""

    def __init__(self, store: EngineStore, resolver: CredentialResolver | None = None) -> None:
        self.store = store
        self.vault = Vault([Fernet.generate_key().decode()])
        self.resolver = resolver or VaultResolver(store, self.vault)

    async def _channel(self, ciphertext: bytes | None) -> Channel:
        ch = channel(credentials_ref=VAULT_REF)
        await self.store.add_channels([ch])
        if ciphertext is not None:
            await self.store.set_channel_secret(ch.id, ciphertext)
        return ch

    async def served(self, secrets):
        return await self._channel(self.vault.encrypt_json(secrets))

    async def change(self, ch, secrets):
        await self.store.set_channel_secret(ch.id, self.vault.encrypt_json(secrets))

    async def unservable(self):
        other_key = Vault([Fernet.generate_key().decode()])
        ciphertexts = {
            "no stored secret": None,
            "a secret under another key": other_key.encrypt_json(ONE),
            "a tampered secret": b"gAAAAAnot-a-fernet-token",
            "a secret that is not JSON": self.vault.encrypt(b"not json"),
            "a secret that is not UTF-8": self.vault.encrypt(b'{"access_token": "caf\xe9"}'),
            "a secret that is not a JSON object": self.vault.encrypt(b'["one"]'),
        }
        cases = {name: await self._channel(c) for name, c in ciphertexts.items()}
        cases["a channel the store does not know"] = channel(credentials_ref=VAULT_REF)
        return cases


class CompositeRig(ResolverRig):
    """A :class:`CompositeResolver` routing by scheme, over the resolvers of ``inner``."""

    def __init__(self, inner: EnvRig | VaultRig, with_vault: bool) -> None:
        self.inner = inner
        self.with_vault = with_vault
        self.env = inner if isinstance(inner, EnvRig) else EnvRig()
        by_scheme = {"env": self.env.refs, "file": self.env.refs}
        if isinstance(inner, VaultRig):
            by_scheme["vault"] = inner.resolver
        self.resolver = CompositeResolver(by_scheme)

    async def served(self, secrets):
        return await self.inner.served(secrets)

    async def change(self, ch, secrets):
        await self.inner.change(ch, secrets)

    async def unservable(self):
        cases = {**await self.inner.unservable(), **await self.env.unservable()}
        cases["an unsupported scheme"] = channel(credentials_ref="s3:bucket/secrets")
        cases["no scheme at all"] = channel(credentials_ref="a-bare-token")
        if not self.with_vault:
            cases["a vault channel with no key configured"] = channel(credentials_ref=VAULT_REF)
        return cases


class StaticRig(ResolverRig):
    """:class:`herald.testing.StaticCredentials`: one token for every channel it serves."""

    def __init__(self) -> None:
        self.refused = channel()
        self.resolver = StaticCredentials({self.refused.id})

    async def served(self, secrets):
        assert set(secrets) == {"access_token"}, "StaticCredentials serves a token only"
        self.resolver.token = secrets["access_token"]
        return channel()

    async def change(self, ch, secrets):
        self.resolver.token = secrets["access_token"]

    async def unservable(self):
        return {"a channel it is told to refuse": self.refused}


@asynccontextmanager
async def opened_rig(kind: str, tmp_path: Path) -> AsyncIterator[ResolverRig]:
    """The rig of ``kind``: ``env``, ``file``, ``static``, ``vault-<store kind>`` (a
    VaultResolver on that store), ``composite-<store kind>`` (env, file and vault routed by
    scheme) or ``composite-keyless`` (env and file only, as with no secret key configured)."""
    family, _, store_kind = kind.partition("-")
    if family == "env":
        yield EnvRig()
    elif family == "file":
        yield FileRig(tmp_path)
    elif family == "static":
        yield StaticRig()
    elif kind == "composite-keyless":
        yield CompositeRig(EnvRig(), with_vault=False)
    elif family in ("vault", "composite"):
        async with opened_store(store_kind, tmp_path) as store:
            vault = VaultRig(store)
            yield vault if family == "vault" else CompositeRig(vault, with_vault=True)
    else:
        pytest.fail(f"no resolver rig of kind {kind!r}")
