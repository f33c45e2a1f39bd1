"""The platforms' content rules: importable without an HTTP client, the connectors' own rules."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from herald.config import Settings
from herald.domain import Content, Media, MediaKind, Platform
from herald.errors import ContentInvalid
from herald.platforms.registry import build_connectors
from herald.platforms.rules import VALIDATORS, Validator

LOADED = """
import json, sys
import herald.platforms.rules
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("aiohttp", "herald.platforms")))))
"""


def test_the_rules_import_no_http_client() -> None:
    # The API checks posts with these rules; a fresh interpreter shows what they pull in.
    done = subprocess.run(
        [sys.executable, "-c", LOADED], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(done.stdout)
    assert "aiohttp" not in loaded
    assert loaded == ["herald.platforms", "herald.platforms.rules"]


VIDEO = Media("https://cdn.example/v.mp4", MediaKind.VIDEO)
IMAGES = tuple(Media(f"https://cdn.example/{n}.jpg", MediaKind.IMAGE) for n in range(11))


def refusal(validate: Validator, content: Content) -> tuple[str, str | None] | None:
    """What ``validate`` says about ``content``: its message and field, or nothing."""
    try:
        validate(content)
    except ContentInvalid as exc:
        return exc.message, exc.field
    return None


@pytest.mark.parametrize(
    "content",
    [Content(), Content(text="x", media=(VIDEO,)), Content(text="x", media=IMAGES)],
)
async def test_every_connector_applies_the_rules_the_api_checks(content: Content) -> None:
    connectors = build_connectors(Settings())
    assert set(VALIDATORS) == set(Platform) == set(connectors)
    for platform, connector in connectors.items():
        assert refusal(connector.validate, content) == refusal(VALIDATORS[platform], content)
        await connector.aclose()
