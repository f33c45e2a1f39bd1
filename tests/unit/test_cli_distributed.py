"""``herald dispatcher`` and ``herald worker``: what they refuse before starting anything."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from herald.cli import app

runner = CliRunner()
PG = "postgresql://herald@db.invalid/herald"


def refused(*args: str) -> str:
    result = runner.invoke(app, list(args), env={})
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


def test_a_dispatcher_needs_a_broker_and_postgresql():
    assert "give the broker" in refused("dispatcher", "--database-url", PG)
    sqlite = refused("dispatcher", "--database-url", "sqlite:///x.db", "--broker", "redis://r")
    assert "share a PostgreSQL database" in sqlite
    assert "broker.url must start with" in refused(
        "dispatcher", "--database-url", PG, "--broker", "kafka://k"
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--platforms", "facebook,myspace"), "--platforms: unknown myspace"),
        (("--platforms", ","), "--platforms: unknown (none given)"),
        (("--region", "EU West"), "region"),
        # Limits shared through Redis, never each worker's own: an AMQP broker needs a Redis.
        (("--broker", "amqp://guest:guest@rabbit/"), "give --redis-url"),
    ],
)
def test_a_worker_refuses_what_it_cannot_keep_its_promises_with(args, says):
    base = ("worker", "--database-url", PG)
    if "--broker" not in args:
        base += ("--broker", "redis://127.0.0.1:6379/0")
    assert says in refused(*base, *args)
