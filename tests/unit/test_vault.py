"""Secrets at rest: keys from configuration, rotation, and the credential resolvers."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from herald.config import Settings
from herald.domain import Webhook, new_id
from herald.errors import AuthExpired, ConfigError
from herald.vault import (
    VAULT_REF,
    CompositeResolver,
    SecretUnreadable,
    Vault,
    VaultResolver,
    build_resolver,
    rotate_secrets,
)
from tests.factories import channel


def key() -> str:
    return Fernet.generate_key().decode()


def test_settings_take_keys_as_a_list_or_a_string(monkeypatch):
    a, b = key(), key()
    monkeypatch.setenv("HERALD_SECRET_KEYS", f"{a}, {b}")
    assert [k.get_secret_value() for k in Settings().secret_keys] == [a, b]
    monkeypatch.setenv("HERALD_SECRET_KEYS", f'["{b}"]')
    assert [k.get_secret_value() for k in Settings().secret_keys] == [b]
    monkeypatch.delenv("HERALD_SECRET_KEYS")
    assert Settings().secret_keys == []


def test_settings_refuse_a_bad_key_without_echoing_it(monkeypatch):
    monkeypatch.setenv("HERALD_SECRET_KEYS", "not-a-real-key-but-secret")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "not-a-real-key-but-secret" not in str(info.value)
    assert "Fernet" in str(info.value)


def test_no_key_no_vault():
    with pytest.raises(ConfigError, match="HERALD_SECRET_KEYS"):
        Vault([])
    with pytest.raises(ConfigError):
        Vault(["short"])


def test_rotation_first_key_encrypts_every_key_decrypts():
    old, new = key(), key()
    sealed = Vault([old]).encrypt_json({"access_token": "t"})
    both = Vault([new, old])
    assert both.decrypt_json(sealed) == {"access_token": "t"}
    assert not both.is_current(sealed)
    rotated = both.rotate(sealed)
    assert both.is_current(rotated)
    assert Vault([new]).decrypt_json(rotated) == {"access_token": "t"}
    with pytest.raises(SecretUnreadable):
        Vault([new]).decrypt(sealed)
    with pytest.raises(SecretUnreadable):
        both.decrypt(b"garbage")


async def test_vault_resolver_decrypts_and_forgets(store):
    vault = Vault([key()])
    ch = channel(credentials_ref=VAULT_REF)
    await store.add_channels([ch])
    await store.set_channel_secret(ch.id, vault.encrypt_json({"access_token": "one"}))
    resolver = VaultResolver(store, vault)
    assert await resolver.resolve(ch) == {"access_token": "one"}
    await store.set_channel_secret(ch.id, vault.encrypt_json({"access_token": "two"}))
    assert await resolver.resolve(ch) == {"access_token": "one"}  # cached
    resolver.forget(ch)
    assert await resolver.resolve(ch) == {"access_token": "two"}
    bare = channel(credentials_ref=VAULT_REF)
    await store.add_channels([bare])
    with pytest.raises(AuthExpired, match="no stored credentials"):
        await resolver.resolve(bare)
    await store.set_channel_secret(bare.id, Vault([key()]).encrypt_json({"a": "b"}))
    with pytest.raises(AuthExpired, match="cannot be decrypted"):
        await resolver.resolve(bare)


async def test_composite_resolver_routes_by_scheme(store, monkeypatch):
    monkeypatch.setenv("HERALD_TEST_TOKEN", "env-token")
    settings = Settings(secret_keys=[key()])
    vault = Vault.from_settings(settings)
    resolver = build_resolver(settings, store)
    in_vault = channel(credentials_ref=VAULT_REF)
    in_env = channel(credentials_ref="env:HERALD_TEST_TOKEN")
    await store.add_channels([in_vault, in_env])
    await store.set_channel_secret(in_vault.id, vault.encrypt_json({"access_token": "v"}))
    assert await resolver.resolve(in_vault) == {"access_token": "v"}
    assert await resolver.resolve(in_env) == {"access_token": "env-token"}
    resolver.forget(in_vault)
    with pytest.raises(AuthExpired, match="unsupported"):
        await resolver.resolve(channel(credentials_ref="s3:bucket"))
    keyless = build_resolver(Settings(), store)
    with pytest.raises(AuthExpired, match="no secret key"):
        await keyless.resolve(in_vault)
    assert isinstance(keyless, CompositeResolver)


async def test_rotate_secrets_reencrypts_channel_secrets(store):
    old, new = key(), key()
    before = Vault([old])
    ch = channel(credentials_ref=VAULT_REF)
    env = channel(credentials_ref="env:X")
    await store.add_channels([ch, env])
    await store.set_channel_secret(ch.id, before.encrypt_json({"access_token": "t"}))
    hook = Webhook(new_id("wh"), ch.workspace_id, "https://h.test", ("delivery.failed",))
    await store.add_webhook(hook, before.encrypt(b"whsec_x"))
    after = Vault([new, old])
    report = await rotate_secrets(store, after)
    assert report.channels_rotated == 1
    assert Vault([new]).decrypt_json(await store.get_channel_secret(ch.id)) == {"access_token": "t"}
    # The store cannot rewrite a webhook secret yet: it is reported, not lost.
    assert (report.webhooks_current, report.webhooks_stale) == (0, 1)
    assert not report.complete
    again = await rotate_secrets(store, after)
    assert again.channels_rotated == 0


async def test_an_engine_without_a_key_refuses_vault_channels(store):
    from herald.bootstrap import running_engine

    await store.add_channels([channel(credentials_ref="env:X")])
    async with running_engine(Settings(), store):
        pass  # no vault channel: no key needed
    await store.add_channels([channel(credentials_ref=VAULT_REF)])
    with pytest.raises(ConfigError, match="HERALD_SECRET_KEYS"):
        async with running_engine(Settings(), store):
            pass
    async with running_engine(Settings(secret_keys=[key()]), store):
        pass
