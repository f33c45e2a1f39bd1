"""``file:`` references into one secrets file shared by many channels: the file is parsed
once for all of them, and read again as soon as it changed on disk."""

from __future__ import annotations

import json

import pytest

from herald.errors import AuthExpired
from herald.service import credentials
from herald.service.credentials import RefResolver, SecretsFile
from herald.testing import channel


@pytest.fixture
def reads(monkeypatch):
    """How many times the resolver read a file."""
    counted = []
    real = credentials._read

    def counting(path):
        counted.append(path)
        return real(path)

    monkeypatch.setattr(credentials, "_read", counting)
    return counted


def _channels(file: SecretsFile, count: int):
    file.put_many({f"ch_{n}": {"access_token": f"token {n}"} for n in range(count)})
    return [channel(id=f"ch_{n}", credentials_ref=file.ref(f"ch_{n}")) for n in range(count)]


async def test_one_read_serves_every_channel_of_the_file(tmp_path, reads):
    file = SecretsFile(tmp_path / "secrets.json")
    resolver = RefResolver()
    for n, ch in enumerate(_channels(file, 50)):
        assert dict(await resolver.resolve(ch)) == {"access_token": f"token {n}"}
    assert len(reads) == 1


async def test_a_file_changed_on_disk_is_read_again(tmp_path, reads):
    file = SecretsFile(tmp_path / "secrets.json")
    resolver = RefResolver()
    first, second = _channels(file, 2)
    await resolver.resolve(first)
    file.put(second.id, {"access_token": "renewed"})  # re-authorised since
    assert dict(await resolver.resolve(second)) == {"access_token": "renewed"}
    assert len(reads) == 2


async def test_a_file_is_read_again_after_its_ttl(tmp_path, reads):
    file = SecretsFile(tmp_path / "secrets.json")
    resolver = RefResolver(ttl_s=0.0)
    ch = _channels(file, 1)[0]
    await resolver.resolve(ch)
    await resolver.resolve(ch)
    assert len(reads) == 2


async def test_forgetting_a_channel_reads_its_file_again(tmp_path, reads):
    file = SecretsFile(tmp_path / "secrets.json")
    resolver = RefResolver()
    first, second = _channels(file, 2)
    await resolver.resolve(first)
    resolver.forget(first)  # the platform refused its token
    await resolver.resolve(second)
    assert len(reads) == 2


@pytest.mark.parametrize("body", ["[1, 2]", "{not json"])
async def test_a_file_that_is_not_an_object_of_secrets_is_auth_expired(tmp_path, body):
    path = tmp_path / "secrets.json"
    path.write_text(body, encoding="utf-8")
    ch = channel(credentials_ref=f"file:{path}#ch_x")
    with pytest.raises(AuthExpired):
        await RefResolver().resolve(ch)
    path.write_text(json.dumps({"ch_x": "token"}), encoding="utf-8")
    assert dict(await RefResolver().resolve(ch)) == {"access_token": "token"}
