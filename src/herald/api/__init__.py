"""Herald's multi-tenant REST API (FastAPI), built by :func:`create_app` (docs/api.md).

- :mod:`.app`: the factory; :mod:`.deps`: authentication and services as dependencies;
- :mod:`.problems`: every error as ``application/problem+json``;
- :mod:`.guards`: request body limits; :mod:`.metrics`: ``/metrics`` and request counters;
- :mod:`.schemas`: request and response models (``XCreate``, ``XUpdate``, ``XPublic``);
- :mod:`.routers`: one module per resource, translating HTTP to calls of
  :mod:`herald.service`, which holds the rules. Nothing here imports the engine or the
  connectors: what the API needs of them is injected (see :func:`create_app`).
"""

from herald.api.app import create_app

__all__ = ["create_app"]
