"""``herald admin``: workspaces and keys from the command line, key rotation."""

from __future__ import annotations

import asyncio

from cryptography.fernet import Fernet
from typer.testing import CliRunner

from herald.cli import app
from herald.domain import Webhook, new_id
from herald.service.tenancy import KEY_PATTERN, Tenancy
from herald.service.vault import VAULT_REF, Vault
from herald.stores.sqlite import SQLiteStore
from herald.stores.sqlite_lock import EngineLock
from herald.testing import channel

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


async def _opened(db, work):
    store = SQLiteStore(db)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def test_rotate_keys_leaves_every_secret_readable_with_the_new_key_alone(tmp_path):
    db = tmp_path / "h.db"
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    ch = channel(credentials_ref=VAULT_REF)
    hook_id = new_id("wh")

    async def seed(store):
        await store.add_channels([ch])
        await store.set_channel_secret(ch.id, Vault([old]).encrypt_json({"access_token": "t"}))
        # A workspace with a webhook and no channel: rotation must reach it too.
        issued = await Tenancy(store).create_workspace("No channels")
        hook = Webhook(hook_id, issued.key.workspace_id, "https://h.test", ("delivery.failed",))
        await store.add_webhook(hook, Vault([old]).encrypt(b"whsec_1"))

    asyncio.run(_opened(db, seed))
    result = invoke(
        "admin", "rotate-keys", "--db", str(db), env={"HERALD_SECRET_KEYS": f"{new},{old}"}
    )
    assert result.exit_code == 0, result.output
    assert "channel secrets re-encrypted: 1" in result.output
    assert "webhook secrets re-encrypted: 1" in result.output

    async def read(store):
        return await store.get_channel_secret(ch.id), await store.get_webhook_secret(hook_id)

    channel_secret, webhook_secret = asyncio.run(_opened(db, read))
    assert Vault([new]).decrypt_json(channel_secret) == {"access_token": "t"}
    assert Vault([new]).decrypt(webhook_secret) == b"whsec_1"
    assert invoke("admin", "rotate-keys", "--db", str(db)).exit_code == 2  # no key configured


def test_rotate_keys_names_the_secrets_no_key_reads(tmp_path):
    db = tmp_path / "h.db"
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    lost = channel(credentials_ref=VAULT_REF)

    async def seed(store):
        await store.add_channels([lost])
        await store.set_channel_secret(lost.id, Vault([old]).encrypt_json({"access_token": "t"}))

    asyncio.run(_opened(db, seed))
    # The old key was dropped before rotating: nothing can read that secret any more.
    result = invoke("admin", "rotate-keys", "--db", str(db), env={"HERALD_SECRET_KEYS": new})
    assert result.exit_code == 1, result.output
    assert "channel secrets re-encrypted: 0" in result.output
    assert f"channel {lost.id}" in result.output


def test_new_secret_key_is_a_fernet_key():
    result = invoke("admin", "new-secret-key")
    Fernet(result.output.strip())


def test_a_second_engine_is_refused_before_it_touches_the_schema(tmp_path):
    """The engine lock comes first: a `herald run` beside a running engine must not migrate
    the database under it before refusing to start."""
    db = tmp_path / "herald.db"
    held = EngineLock(str(db))
    held.acquire()
    try:
        result = runner.invoke(app, ["run", "--db", str(db), "--burst"])
    finally:
        held.release()
    assert result.exit_code == 2
    assert "another Herald engine is already running" in result.output
    assert not db.exists()


def test_delete_workspace_asks_for_the_id_twice_and_erases_it(tmp_path):
    db = tmp_path / "h.db"
    made = invoke("admin", "create-workspace", "Acme", "--db", str(db))
    token = made.output.strip().splitlines()[-1]
    workspace_id = authenticate(db, token).workspace_id

    refused = invoke(
        "admin", "delete-workspace", workspace_id, "--confirm", "ws_x", "--db", str(db)
    )
    assert refused.exit_code == 2
    assert "cannot be undone" in refused.output
    authenticate(db, token)  # still there

    done = invoke(
        "admin", "delete-workspace", workspace_id, "--confirm", workspace_id, "--db", str(db)
    )
    assert done.exit_code == 0, done.output
    assert "api_keys: 1" in done.output
    again = invoke(
        "admin", "delete-workspace", workspace_id, "--confirm", workspace_id, "--db", str(db)
    )
    assert again.exit_code == 2
    assert "not found" in again.output.lower()
