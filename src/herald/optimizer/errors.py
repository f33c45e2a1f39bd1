"""The optimizer's errors, under Herald's one root (:mod:`herald.errors`).

HeraldError
├── InvalidInput
│   └── DatasetError        a file of past posts that cannot be read as asked (missing
│                           file, unknown column, a metric that is not a number...)
└── OptimizerError          the model could not be fitted (too few posts, no finite mode)
"""

from __future__ import annotations

from herald.errors import HeraldError, InvalidInput

__all__ = ["DatasetError", "OptimizerError"]


class DatasetError(InvalidInput):
    """A file of past posts cannot be used as asked; ``field`` names the column when known."""


class OptimizerError(HeraldError):
    """The model could not be fitted on the posts given."""
