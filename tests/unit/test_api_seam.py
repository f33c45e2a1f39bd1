"""The API and the services stand on the vocabulary and the store: importing every module of
``herald.api`` and ``herald.service`` loads neither the engine, nor a connector, nor aiohttp.

What the API needs of them (the platforms' content rules, the engine's ``notify`` and metrics)
is passed to ``create_app`` by whoever runs it. Checked in a fresh interpreter, since this one
has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("aiohttp", "herald.bootstrap", "herald.engine", "herald.platforms")
#: Sends webhooks over aiohttp; it runs beside the engine (``herald run``, ``herald serve``),
#: never inside the API.
SENDER = "herald.service.webhook_sender"

_PROGRAM = """
import importlib, json, pkgutil, sys
import herald.api, herald.service
skip = set(sys.argv[1:])
names = [
    m.name
    for package in (herald.api, herald.service)
    for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if m.name not in skip
]
for name in names:
    importlib.import_module(name)
print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
"""


def _import_all(*skip: str) -> tuple[list[str], list[str]]:
    """Import every module of the API and the services except ``skip`` in a new interpreter;
    return what was imported and which forbidden modules got loaded."""
    run = subprocess.run(
        [sys.executable, "-c", _PROGRAM, *skip],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found = json.loads(run.stdout)
    loaded = [m for m in found["loaded"] if any(m == f or m.startswith(f"{f}.") for f in FORBIDDEN)]
    return found["imported"], loaded


def test_the_api_and_services_import_no_engine_connector_or_aiohttp():
    imported, loaded = _import_all(SENDER)
    assert {"herald.api.app", "herald.api.routers.posts", "herald.service.posts"} <= set(imported)
    assert loaded == []


def test_the_check_sees_what_the_webhook_sender_loads():
    _, loaded = _import_all()
    assert "aiohttp" in loaded
