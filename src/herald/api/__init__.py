"""Herald's multi-tenant REST API (FastAPI), built by :func:`create_app` (docs/api.md).

- :mod:`.app`: the factory; :mod:`.deps`: authentication and services as dependencies;
- :mod:`.problems`: every error as ``application/problem+json``;
- :mod:`.guards`: request body limits; :mod:`.metrics`: ``/metrics`` and request counters;
- :mod:`.schemas`: request and response models (``XCreate``, ``XUpdate``, ``XPublic``);
- :mod:`.routers`: one module per resource. Business logic lives in the service modules
  (:mod:`herald.posts`, :mod:`herald.deliveries`, :mod:`herald.channels`,
  :mod:`herald.tenancy`, :mod:`herald.subscriptions`, :mod:`herald.post_csv`).
"""

from herald.api.app import create_app

__all__ = ["create_app"]
