"""The chaos run's fleet: a process that stops by itself is counted and started again."""

from __future__ import annotations

import os

from herald.demo.chaos.fleet import EngineFleet, Member
from herald.testing import eventually


async def test_a_process_that_exits_by_itself_is_counted_and_started_again():
    # ``herald --help`` exits at once: each exit must be logged, counted and followed by a
    # new start (the log once named a field "process", which logging refuses, and the watcher
    # died with it: the process was never started again).
    fleet = EngineFleet([Member(("--help",), dict(os.environ))])
    await fleet.start()
    try:
        await eventually(lambda: fleet.exits >= 2, within_s=30.0)
    finally:
        await fleet.stop()
    assert fleet.exit_codes.count(0) >= 2  # each run of --help ended by itself


async def test_an_exit_is_reported_with_the_last_words_the_process_wrote():
    # A refused command line: the CLI says why on stderr and exits 2; the verdict quotes it.
    member = Member(("run", "--db", "/tmp/x.db", "--database-url", "sqlite:///y"), dict(os.environ))
    fleet = EngineFleet([member])
    await fleet.start()
    try:
        await eventually(lambda: fleet.exits >= 1, within_s=30.0)
    finally:
        await fleet.stop()
    assert fleet.exit_details[0].startswith("run 0 exited 2: ")
    assert "give --db or --database-url, not both" in fleet.exit_details[0]
