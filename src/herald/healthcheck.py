"""``herald healthcheck``: ask this container's Herald process whether it is alive.

The container image has no curl (a slim base, one less binary to patch), so its
``HEALTHCHECK`` runs this instead: one HTTP GET of ``/healthz`` over loopback, exit 0 on a 200
and 1 on anything else (refused, timed out, another status).

One image serves every role, and the roles answer on different ports: the engine roles
(``herald run``, ``dispatcher``, ``worker``) on their probe port (``engine.probe_port``), the
API roles (``herald api``, ``serve``) on the API port. The check reads the same settings as
the process it checks, so it asks the probe port when one is set and the API port otherwise.
The standard library's HTTP client only: the check runs every few seconds in every container
and must start fast and need nothing the process itself does not.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass

from herald.config import Settings

__all__ = ["HealthTarget", "check", "target"]

#: Listen addresses that mean "every interface": the check reaches them over loopback.
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True, slots=True)
class HealthTarget:
    host: str
    port: int
    path: str = "/healthz"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"


def _reachable(listen_host: str) -> str:
    if listen_host in _WILDCARDS:
        return "::1" if ":" in listen_host else "127.0.0.1"
    return listen_host


def target(settings: Settings, *, port: int | None = None) -> HealthTarget:
    """Where the process configured by ``settings`` answers ``/healthz``: its probe when it
    has one (the engine roles), else its API; ``port`` overrides the choice."""
    probe_port = settings.engine.probe_port
    if port is not None:
        listen_host = settings.engine.probe_host if port == probe_port else settings.api.host
        return HealthTarget(_reachable(listen_host), port)
    if probe_port is not None:
        return HealthTarget(_reachable(settings.engine.probe_host), probe_port)
    return HealthTarget(_reachable(settings.api.host), settings.api.port)


def check(where: HealthTarget, *, timeout_s: float) -> str | None:
    """None if ``where`` answers 200 within ``timeout_s``, else what went wrong."""
    connection = http.client.HTTPConnection(where.host, where.port, timeout=timeout_s)
    try:
        connection.request("GET", where.path, headers={"Connection": "close"})
        answer = connection.getresponse()
        answer.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{where.url}: {exc or type(exc).__name__}"
    finally:
        connection.close()
    if answer.status != 200:
        return f"{where.url}: HTTP {answer.status}"
    return None
