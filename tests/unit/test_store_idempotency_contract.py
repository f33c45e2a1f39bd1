"""The idempotency-key face of the store contract on the memory and SQLite stores."""

from __future__ import annotations

from tests.suites.idempotency_contract import IdempotencyContract


class TestIdempotencyContract(IdempotencyContract):
    pass
