"""Secrets at rest: keys from configuration, rotation, and the credential resolvers."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from herald.config import Settings
from herald.domain import DEFAULT_WORKSPACE, Webhook, Workspace, new_id
from herald.errors import AuthExpired, ConfigError
from herald.service.vault import (
    VAULT_REF,
    CompositeResolver,
    Vault,
    VaultResolver,
    build_resolver,
    rotate_secrets,
)
from herald.testing import channel


def key() -> str:
    return Fernet.generate_key().decode()


async def _workspace(store, name):
    ws = Workspace(new_id("ws"), name)
    await store.add_workspace(ws)
    return ws


class VaultSuite:
    """Runs on every store a tier provides (its ``store`` fixture)."""

    async def test_vault_resolver_decrypts_and_forgets(self, store):
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

    async def test_composite_resolver_routes_by_scheme(self, store, monkeypatch):
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

    async def test_rotate_secrets_reencrypts_every_secret_of_every_workspace(self, store):
        old, new = key(), key()
        before, after, only_new = Vault([old]), Vault([new, old]), Vault([new])
        with_channel, without = await _workspace(store, "A"), await _workspace(store, "B")
        ch = channel(credentials_ref=VAULT_REF, workspace_id=with_channel.id)
        fresh = channel(credentials_ref=VAULT_REF, workspace_id=with_channel.id)
        env = channel(credentials_ref="env:X")
        await store.add_channels([ch, fresh, env])
        await store.set_channel_secret(ch.id, before.encrypt_json({"access_token": "t"}))
        await store.set_channel_secret(fresh.id, only_new.encrypt_json({"access_token": "n"}))
        hooks = [
            Webhook(new_id("wh"), ws_id, f"https://{i}.test/h", ("delivery.failed",))
            for i, ws_id in enumerate([with_channel.id, without.id, without.id, DEFAULT_WORKSPACE])
        ]
        for i, hook in enumerate(hooks):
            await store.add_webhook(hook, before.encrypt(f"whsec_{i}".encode()))
        gone = Webhook(new_id("wh"), without.id, "https://gone.test/h", ("delivery.failed",))
        await store.add_webhook(gone, before.encrypt(b"whsec_gone"))
        await store.delete_webhook(gone.id)

        report = await rotate_secrets(store, after)

        assert (report.channels_rotated, report.webhooks_rotated) == (1, len(hooks))
        assert report.complete
        # Only the new key is needed now, for the channel's and every webhook's secret.
        assert only_new.decrypt_json(await store.get_channel_secret(ch.id)) == {"access_token": "t"}
        assert only_new.decrypt_json(await store.get_channel_secret(fresh.id)) == {
            "access_token": "n"
        }
        assert await store.get_channel_secret(env.id) is None
        for i, hook in enumerate(hooks):
            assert (
                only_new.decrypt(await store.get_webhook_secret(hook.id)) == f"whsec_{i}".encode()
            )
        again = await rotate_secrets(store, after)
        assert (again.channels_rotated, again.webhooks_rotated, again.complete) == (0, 0, True)

    async def test_rotate_secrets_goes_on_past_an_unreadable_secret(self, store):
        old, new, lost = key(), key(), key()
        ws = await _workspace(store, "A")
        broken, ok = (channel(credentials_ref=VAULT_REF, workspace_id=ws.id) for _ in range(2))
        await store.add_channels([broken, ok])
        await store.set_channel_secret(broken.id, Vault([lost]).encrypt_json({"a": "b"}))
        await store.set_channel_secret(ok.id, Vault([old]).encrypt_json({"access_token": "t"}))
        bad_hook = Webhook(new_id("wh"), ws.id, "https://bad.test/h", ("delivery.failed",))
        good_hook = Webhook(new_id("wh"), ws.id, "https://good.test/h", ("delivery.failed",))
        await store.add_webhook(bad_hook, b"not a token")
        await store.add_webhook(good_hook, Vault([old]).encrypt(b"whsec_ok"))

        report = await rotate_secrets(store, Vault([new, old]))

        assert not report.complete
        assert sorted(report.unreadable) == sorted(
            [f"channel {broken.id}", f"webhook {bad_hook.id}"]
        )
        assert (report.channels_rotated, report.webhooks_rotated) == (1, 1)
        assert Vault([new]).decrypt(await store.get_webhook_secret(good_hook.id)) == b"whsec_ok"
        assert await store.get_webhook_secret(bad_hook.id) == b"not a token"  # left as it was

    async def test_an_engine_without_a_key_refuses_vault_channels(self, store):
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
