"""``herald admin``: workspaces and keys from the command line, key rotation."""

from __future__ import annotations

import asyncio

from cryptography.fernet import Fernet
from typer.testing import CliRunner

from herald.cli import app
from herald.stores.sqlite import SQLiteStore
from herald.tenancy import KEY_PATTERN, Tenancy
from herald.vault import VAULT_REF, Vault
from tests.factories import channel

runner = CliRunner()


def invoke(*args: str, env: dict[str, str] | None = None):
    result = runner.invoke(app, list(args), env=env or {})
    return result


def authenticate(db, token):
    async def check():
        store = SQLiteStore(db)
        await store.open()
        try:
            return await Tenancy(store).authenticate(token)
        finally:
            await store.close()

    return asyncio.run(check())


def test_create_workspace_prints_the_key_alone_on_its_last_line(tmp_path):
    db = tmp_path / "h.db"
    result = invoke("admin", "create-workspace", "Acme Co", "--db", str(db))
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert KEY_PATTERN.match(token)
    key = authenticate(db, token)
    assert result.output.splitlines()[0] == f"workspace: {key.workspace_id}"

    more = invoke("admin", "create-key", key.workspace_id, "--name", "ci", "--db", str(db))
    assert more.exit_code == 0, more.output
    second = more.output.strip().splitlines()[-1]
    second_key = authenticate(db, second)
    assert second_key.workspace_id == key.workspace_id

    revoked = invoke("admin", "revoke-key", second_key.id, "--db", str(db))
    assert revoked.exit_code == 0, revoked.output
    assert invoke("admin", "revoke-key", "key_nope", "--db", str(db)).exit_code == 2
    assert invoke("admin", "create-key", "ws_nope", "--db", str(db)).exit_code == 2


def test_rotate_keys(tmp_path):
    db = tmp_path / "h.db"
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    ch = channel(credentials_ref=VAULT_REF)

    async def seed():
        store = SQLiteStore(db)
        await store.open()
        await store.add_channels([ch])
        await store.set_channel_secret(ch.id, Vault([old]).encrypt_json({"access_token": "t"}))
        await store.close()

    asyncio.run(seed())
    result = invoke(
        "admin", "rotate-keys", "--db", str(db), env={"HERALD_SECRET_KEYS": f"{new},{old}"}
    )
    assert result.exit_code == 0, result.output
    assert "channel secrets re-encrypted: 1" in result.output

    async def read():
        store = SQLiteStore(db)
        await store.open()
        try:
            return await store.get_channel_secret(ch.id)
        finally:
            await store.close()

    assert Vault([new]).decrypt_json(asyncio.run(read())) == {"access_token": "t"}
    assert invoke("admin", "rotate-keys", "--db", str(db)).exit_code == 2  # no key configured


def test_new_secret_key_is_a_fernet_key():
    result = invoke("admin", "new-secret-key")
    Fernet(result.output.strip())
