"""Secret keys, rotation and the vault resolver, over the memory and SQLite stores."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from herald.config import Settings
from herald.errors import ConfigError
from herald.service.vault import (
    SecretUnreadable,
    Vault,
)
from tests.suites.vault import VaultSuite, key


class TestVault(VaultSuite):
    pass


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
